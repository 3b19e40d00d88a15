"""Rows per second for batch inference on this machine: one process with N lincore threads, Ray
Data with N actors x 1 thread, and a Dask LocalCluster with N worker processes x 1 thread, for the
same models over the same rows (issue #23). Not a test; see bench/README.md, "Scale-out".

    python bench/scaleout_bench.py             # both models, the row counts below
    python bench/scaleout_bench.py --quick     # fewer rows: about a minute on 2 cores
    python bench/scaleout_bench.py --engines one,dask --models mlp1024x4

The rows are generated and written as Parquet first, then read into the engine's memory (Ray:
materialize(); Dask: persist()), all untimed; what is timed is the scoring job from there to every
output row in the driver, actor/worker start-up included (the one-process figure has none of
that). Each engine's output is checked bitwise against the one-process output.
One line per (model, engine), key=value, greppable.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import batch_job  # noqa: E402

import lincore  # noqa: E402

ROWS = {"mnist": 400_000, "mlp1024x4": 80_000}
QUICK_ROWS = {"mnist": 100_000, "mlp1024x4": 20_000}
BATCH_ROWS = 4096
SHARD_ROWS = 2 * BATCH_ROWS  # several blocks per worker, whole batches


def one_process(model, ids, width, workers, path):
    x = batch_job.features(ids, width)  # generated before the clock starts
    lincore.set_num_threads(workers)
    start = time.perf_counter()
    out = [batch_job.score(model, x[i : i + BATCH_ROWS]) for i in range(0, len(x), BATCH_ROWS)]
    took = time.perf_counter() - start
    return np.concatenate(out), took, took


def timed_scorer():
    """The Ray example's Scorer, also stamping each batch with its start and end (wall clock),
    so the steady-state rate can leave out actor start-up. Defined in a function: Ray ships it
    by value."""
    import batch_inference_ray as job

    class Timed(job.Scorer):
        def __call__(self, batch):
            t0 = time.time()
            out = super().__call__(batch)
            n = len(batch["id"])
            out["t0"], out["t1"] = np.full(n, t0), np.full(n, time.time())
            return out

    return Timed


def timed_partition(part, model, width):
    """The Dask example's score_partition, stamped like timed_scorer's batches."""
    import batch_inference_dask as job

    t0 = time.time()
    out = job.score_partition(part, model, width)
    out["t0"], out["t1"] = t0, time.time()
    return out


def steady(stamps):
    """Seconds from the first batch's start to the last batch's end, over every worker."""
    t0, t1 = stamps
    return float(np.max(t1) - np.min(t0))


def ray_engine(model, ids, width, workers, path):
    import ray

    import batch_inference_ray as job

    ray.init(
        num_cpus=job.local_cpus(workers, 1.0),
        object_store_memory=3 * 1024**3,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(job.__file__).parent)}},
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        job.write_shards(len(ids), width, path, SHARD_ROWS)
        rows = ray.data.read_parquet(
            path, override_num_blocks=-(-len(ids) // SHARD_ROWS)
        ).materialize()
        start = time.perf_counter()
        ds = rows.map_batches(
            timed_scorer(),
            fn_constructor_kwargs={"model": ray.put(model)},
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
            batch_size=BATCH_ROWS,
            batch_format="numpy",
        )
        batches = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
        took = time.perf_counter() - start
    finally:
        ray.shutdown()
    got_ids = np.concatenate([b["id"] for b in batches])
    order = np.argsort(got_ids, kind="stable")
    assert np.array_equal(got_ids[order], ids)
    scores = np.concatenate([b["scores"] for b in batches])[order]
    stamps = [np.concatenate([b[k] for b in batches]) for k in ("t0", "t1")]
    return scores, took, steady(stamps)


def dask_engine(model, ids, width, workers, path):
    from distributed import Client, wait

    import batch_inference_dask as job

    with job.start_local(workers, 1) as cluster, Client(cluster) as client:
        client.register_plugin(job.lincore_threads_plugin(1))
        job.write_shards(len(ids), width, path, SHARD_ROWS)
        rows = job.read_rows(path).persist()
        wait(rows)
        start = time.perf_counter()
        future = client.scatter(model, broadcast=True)
        meta = job.output_meta(model[-1].out_features)
        meta["t0"], meta["t1"] = np.zeros(0), np.zeros(0)
        frame = rows.map_partitions(timed_partition, future, width, meta=meta)
        df = client.compute(frame).result()
        took = time.perf_counter() - start
    df = df.sort_values("id", kind="stable")
    assert np.array_equal(df["id"].to_numpy(), ids)
    stamps = (df["t0"].to_numpy(), df["t1"].to_numpy())
    scores = np.ascontiguousarray(df.drop(columns=["id", "t0", "t1"]).to_numpy())
    return scores, took, steady(stamps)


ENGINES = {"one": one_process, "ray": ray_engine, "dask": dask_engine}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--workers", type=int, default=2, help="threads / actors / worker processes")
    p.add_argument("--models", default="mnist,mlp1024x4")
    p.add_argument("--engines", default="one,ray,dask")
    args = p.parse_args()
    print(
        f"# scaleout_bench cpus={batch_job.cores()} isa={lincore.cpu_capability()} "
        f"workers={args.workers} date={time.strftime('%Y-%m-%dT%H:%M:%S')}"
    )
    for name in args.models.split(","):
        rows = (QUICK_ROWS if args.quick else ROWS)[name]
        model, width = batch_job.make_model(name), batch_job.MODELS[name][0]
        ids = np.arange(rows)
        reference, base = None, None
        for engine in args.engines.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "rows")
                scores, took, busy = ENGINES[engine](model, ids, width, args.workers, path)
            if engine == "one":
                reference, base = scores, rows / took
            exact = "n/a" if reference is None else str(np.array_equal(scores, reference))
            rate, steady_rate = rows / took, rows / busy
            vs = f"{rate / base:.2f}" if base else "n/a"
            steady_vs = f"{steady_rate / base:.2f}" if base else "n/a"
            print(
                f"model={name} engine={engine} workers={args.workers} rows={rows} "
                f"seconds={took:.2f} rows_per_s={rate:.0f} vs_one_process={vs} "
                f"steady_rows_per_s={steady_rate:.0f} steady_vs_one_process={steady_vs} "
                f"bitwise_equal={exact}",
                flush=True,
            )


if __name__ == "__main__":
    main()
