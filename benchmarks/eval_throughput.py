"""Evaluation throughput with the metrics, and the metrics' share of it.
Target: MaxBoxAcc + PxAP take under 10% of evaluation time at ``cam_curve_interval=0.001``.

``trainer.test`` of CAM on the synthetic test split at the protocol's 224x224 (maps upsampled to the image
and min-max normalised, MaxBoxAcc V2 with every contour, PxAP on the masks), with the time spent in the
metrics (``LocalizationEvaluator.update`` + ``compute``) measured separately. The operating threshold is
fixed so no val pass runs first.

    python benchmarks/eval_throughput.py                                  # resnet18, 224 px, 36 images
    python benchmarks/eval_throughput.py --backbone resnet50 --images_per_class 60 --threads 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import lightning as L
from _common import machine, set_threads, synthetic_datamodule, verdict

TARGET = 0.10


def timing(fn: Callable[..., Any], bucket: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            bucket.append(time.perf_counter() - t0)

    return wrapper


def run(args: argparse.Namespace, interval: float) -> dict[str, float]:
    from wsol_lightning.methods import CAM

    data = synthetic_datamodule(4, args.size, args.batch, images_per_class=args.images_per_class)
    model = CAM(backbone=args.backbone, num_classes=4, cam_curve_interval=interval, operating_threshold=0.5)
    update: list[float] = []
    compute: list[float] = []
    model.evaluator.update = timing(model.evaluator.update, update)
    model.evaluator.compute = timing(model.evaluator.compute, compute)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    data.prepare_data()
    data.setup("test")
    images = len(data.datasets["test"])
    t0 = time.perf_counter()
    trainer.test(model, datamodule=data, verbose=False)
    total = time.perf_counter() - t0
    metrics = sum(update) + sum(compute)
    return {"images": images, "total": total, "metrics": metrics, "update": sum(update), "compute": sum(compute)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images_per_class", type=int, default=30, help="30 -> 9 test images per class")
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.001, 0.01])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine())
    print(f"CAM {args.backbone}, {args.size}x{args.size}, batch {args.batch}")
    run(args, 0.01)  # warm-up (dataset generation, first allocations)
    for interval in args.intervals:
        r = run(args, interval)
        share = r["metrics"] / r["total"]
        print(f"interval {interval:g}: {r['images']} images in {r['total']:.2f} s = {r['images'] / r['total']:.1f} "
              f"img/s; metrics {r['metrics']:.2f} s ({r['metrics'] / r['images'] * 1e3:.1f} ms/img: update "
              f"{r['update']:.2f} s, compute {r['compute']:.2f} s) = {share:.1%} of eval"
              + (f" ({verdict(share, TARGET)})" if interval == 0.001 else ""))


if __name__ == "__main__":
    main()
