"""Throughput of the train and eval input pipelines (images/s per worker).

Usage: python benchmarks/data.py [--data_dir DIR] [--image_size 224] [--batches 20]
Without --data_dir it uses the synthetic dataset (generated once into the cache).
"""

from __future__ import annotations

import argparse
import time

from wsol_lightning.data import CUBDataModule, SyntheticDataModule


def measure(loader, batches: int) -> float:
    it = iter(loader)
    next(it)  # warm-up (worker start, first decode)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            break
        n += batch["image"].shape[0]
    return n / max(time.perf_counter() - t0, 1e-9)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data_dir", default=None, help="CUB_200_2011 folder (default: synthetic data)")
    p.add_argument("--image_size", type=int, default=224)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    for workers in args.workers:
        kw = dict(batch_size=args.batch_size, num_workers=workers, image_size=args.image_size)
        if args.data_dir:
            dm = CUBDataModule(args.data_dir, **kw)
        else:
            dm = SyntheticDataModule(images_per_class=150, **kw)
            dm.prepare_data()
        dm.setup("fit")
        dm.setup("test")
        train = measure(dm.train_dataloader(), args.batches)
        test = measure(dm.test_dataloader(), args.batches)
        per = max(workers, 1)
        print(
            f"workers={workers}: train {train:8.1f} img/s ({train / per:7.1f}/worker)  "
            f"eval {test:8.1f} img/s ({test / per:7.1f}/worker)"
        )


if __name__ == "__main__":
    main()
