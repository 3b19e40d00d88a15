"""The seed notebook (a PyTorch beginner notebook: tensors, nn.Linear, nn.Sequential and
counting parameters) replayed with lincore in place of torch: every cell, printing what the
notebook shows; the "# In [N]" lines name the notebook's cells.

    python examples/seed_notebook.py                   # with lincore
    python examples/seed_notebook.py --backend torch   # the same cells with PyTorch, to compare
"""

from __future__ import annotations

import argparse
import importlib


def show(value: object) -> None:
    """What a notebook prints for a cell's last expression."""
    print(repr(value))


def main(backend: str = "lincore") -> None:
    lib = importlib.import_module(backend)
    nn = lib.nn
    lib.manual_seed(0)

    print("# In [6]-[8]: a tensor from a nested list")
    my_list = [[1, 2, 3], [4, 5, 6]]
    tensor = lib.tensor(my_list)
    show(tensor)

    print("# In [9]: its shape")
    show(tensor.shape)

    print("# In [10]: its dtype")
    show(tensor.dtype)

    print("# In [12]: input_tensor with three features")
    input_tensor = lib.tensor([[0.3471, 0.4547, -0.2356]])
    show(input_tensor)

    print("# In [13]-[14]: a linear layer, and the input passed through it")
    linear_layer = nn.Linear(in_features=3, out_features=2)
    output = linear_layer(input_tensor)
    print(output)

    print(
        "# (aside) the int64 tensor of In [8] cannot go through a float32 Linear, in PyTorch either"
    )
    try:
        nn.Linear(3, 2)(tensor)
    except RuntimeError as error:
        print(f"RuntimeError: {error}")

    print("# In [15]: the layer's weight")
    print(linear_layer.weight)

    print("# In [16]: the layer's bias")
    print(linear_layer.bias)

    print("# Hidden layers: three linear layers stacked with nn.Sequential")
    n_features, n_classes = 3, 2  # the weather example: 3 features, rain or cloudy
    model = nn.Sequential(
        nn.Linear(n_features, 8),  # n_features represents number of input features
        nn.Linear(8, 4),
        nn.Linear(4, n_classes),  # n_classes represents number of output classes
    )
    show(model)
    print(model(input_tensor))

    print("# Adding more layers - three linear layers")
    model = nn.Sequential(
        nn.Linear(10, 18),  # takes 10 layers and output 18
        nn.Linear(18, 20),  # takes 18 layers and output 20
        nn.Linear(20, 5),  # takes 20 layers and output 5
    )
    show(model)

    print("# Parameters and model capacity: a 2-layer network")
    model = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2))
    show(model)
    print("# by hand: 4 neurons x (8 + 1) + 2 neurons x (4 + 1) =", 4 * (8 + 1) + 2 * (4 + 1))

    print("# with .numel()")
    total = 0
    # (the notebook spells the loop variable two ways, paramter / paramater, which is a
    # NameError when run; one spelling here)
    for parameter in model.parameters():
        total += parameter.numel()
    print(total)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="lincore", choices=["lincore", "torch"])
    main(parser.parse_args().backend)
