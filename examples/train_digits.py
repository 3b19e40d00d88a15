"""Train an MLP on scikit-learn's bundled digits (8x8 images, 10 classes; no download) with
lincore: forward, cross-entropy loss, backward and Adam steps, a progress bar while it trains,
and a PNG of the loss and accuracy curves at the end.

    pip install ".[examples]"
    python3 examples/train_digits.py                    # writes digits_training.png
    python3 examples/train_digits.py --epochs 40 --plot out.png
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import lincore
import lincore.nn as nn


def load_data(seed: int) -> tuple[np.ndarray, ...]:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixels 0..16 -> 0..1
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def accuracy(model: nn.Module, x: lincore.Tensor, y: np.ndarray) -> float:
    with lincore.no_grad():
        predicted = np.asarray(model(x).argmax(dim=1))
    return float((predicted == y).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="digits_training.png", help="where to write the PNG")
    args = parser.parse_args()

    lincore.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, x_test, y_train, y_test = load_data(args.seed)
    test_x = lincore.tensor(x_test)

    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )
    loss_fn = nn.CrossEntropyLoss()
    optimizer = lincore.optim.Adam(model.parameters(), lr=args.lr)
    print(model)
    print(
        f"{sum(p.numel() for p in model.parameters())} parameters; "
        f"{len(x_train)} training and {len(x_test)} test images"
    )

    losses, accuracies = [], []
    start = time.perf_counter()
    bar = tqdm(range(args.epochs), desc="training", unit="epoch")
    for _ in bar:
        order = rng.permutation(len(x_train))
        epoch_loss = 0.0
        for first in range(0, len(order), args.batch_size):
            batch = order[first : first + args.batch_size]
            loss = loss_fn(model(lincore.tensor(x_train[batch])), lincore.tensor(y_train[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item() * len(batch)
        losses.append(epoch_loss / len(x_train))
        accuracies.append(accuracy(model, test_x, y_test))
        bar.set_postfix(loss=f"{losses[-1]:.4f}", test_acc=f"{accuracies[-1]:.3f}")
    elapsed = time.perf_counter() - start

    print(
        f"trained {args.epochs} epochs in {elapsed:.1f} s; final test accuracy {accuracies[-1]:.1%}"
    )
    plot(losses, accuracies, args.plot)
    print(f"wrote {args.plot}")


def plot(losses: list[float], accuracies: list[float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(losses) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, losses, marker="o")
    left.set(title="training loss (cross-entropy)", xlabel="epoch", ylabel="loss")
    right.plot(epochs, accuracies, marker="o", color="tab:green")
    right.set(title="test accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle("lincore: MLP 64-128-64-10 on scikit-learn digits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
