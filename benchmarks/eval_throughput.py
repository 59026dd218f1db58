"""Evaluation wall time against the forward pass alone: are the metrics hidden behind it?
Target: eval / forward-only <= 1.10 (issue 16, item 2), with ``async_metrics=True`` (the default).

Three ``trainer.test`` runs of CAM on the synthetic test split at the protocol's 224x224 (maps upsampled to
the image and min-max normalised, MaxBoxAcc V2 with every contour and the outer-contour variant, PxAP on the
masks, the sanity counters and baselines), interleaved and repeated (median):

* ``forward``: the same loop with the localisation-metric updates switched off (data, forward, maps,
  classification accuracy, the epoch-end logging): the floor;
* ``sync``: ``async_metrics=False``, every update on the loop's thread (before issue 16);
* ``async``: ``async_metrics=True``, the updates on background lanes (``methods/background.py``).

Wall time needs a core the forward pass does not use; on a loaded machine it is also reported as CPU time of
the loop's own thread (``time.thread_time``), which waiting does not inflate: with the updates off the loop's
thread it stays at the forward-only figure, and the wall ratio follows it whenever a core is free.

It also times each metric's update on its own (ms of CPU per image), and from those gives the GPU-side
estimate: on a GPU the forward pass shrinks to ``--gpu_forward_ms`` per image while the metrics stay on the
CPU. Synchronously an image costs ``forward + sum(metrics)``; with the lanes it costs
``max(forward, sum(metrics) / cores, pixel, sanity)``, the metrics spread over ``--gpu_cores`` cores (the two
V2 sweeps split a batch's images over ``torch.get_num_threads()`` threads, PxAP and the sanity counters are
one thread each), with this CPU's per-image metric times (a server core is likely faster: pessimistic).
The operating threshold is fixed, so no val pass runs first.

    nice -n 10 python benchmarks/eval_throughput.py                       # resnet18, 224 px, 36 images
    python benchmarks/eval_throughput.py --backbone resnet50 --images_per_class 60 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import lightning as L
from _common import machine, set_threads, synthetic_datamodule, verdict

TARGET = 1.10
MODES = ("forward", "sync", "async")


def timed(fn: Callable[..., Any], bucket: list[float], lock: threading.Lock) -> Callable[..., Any]:
    """``fn`` recording its wall time in ``bucket`` (thread-safe: lanes call it from their threads)."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with lock:
                bucket.append(time.perf_counter() - t0)

    return wrapper


def run(args: argparse.Namespace, mode: str, data: Any) -> dict[str, Any]:
    """One ``trainer.test`` in ``mode``; returns wall seconds and, per metric, the seconds of its updates."""
    from wsol_lightning.methods import CAM

    L.seed_everything(0, verbose=False)  # the same weights in every mode
    model = CAM(backbone=args.backbone, num_classes=4, cam_curve_interval=args.interval, operating_threshold=0.5,
                async_metrics=mode == "async")
    evaluator = model.evaluator
    lanes = {"box": evaluator.box, "box_outer": evaluator.box_outer, "pixel": evaluator.pixel,
             "sanity": evaluator.sanity}
    spent: dict[str, list[float]] = {name: [] for name in lanes}
    lock = threading.Lock()
    for name, metric in lanes.items():
        if metric is not None:
            metric.update = timed(metric.update, spent[name], lock)
    if mode == "forward":
        evaluator.update = lambda *a, **k: None  # the floor: everything but the localisation metrics
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    t0, c0 = time.perf_counter(), time.thread_time()
    trainer.test(model, datamodule=data, verbose=False)
    return {"total": time.perf_counter() - t0, "loop_cpu": time.thread_time() - c0,
            "lanes": {k: sum(v) for k, v in spent.items()}, "metrics": dict(trainer.callback_metrics)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images_per_class", type=int, default=30, help="30 -> 9 test images per class")
    parser.add_argument("--interval", type=float, default=0.001)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the forward pass")
    parser.add_argument("--gpu_forward_ms", type=float, default=1.0,
                        help="assumed GPU forward + map upsampling per image, for the GPU-side estimate")
    parser.add_argument("--gpu_cores", type=int, default=8, help="assumed CPU cores per GPU for the estimate")
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine())
    print(f"CAM {args.backbone}, {args.size}x{args.size}, batch {args.batch}, interval {args.interval:g}, "
          f"{args.threads} intra-op thread(s), median of {args.repeats}")
    data = synthetic_datamodule(4, args.size, args.batch, images_per_class=args.images_per_class)
    data.prepare_data()
    data.setup("test")
    images = len(data.datasets["test"])
    run(args, "async", data)  # warm-up: numba compilation, first allocations, dataset cache
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode in MODES:  # interleaved, so a change of load hits every mode alike
            results[mode].append(run(args, mode, data))
    wall = {m: statistics.median(r["total"] for r in results[m]) for m in MODES}
    cpu = {m: statistics.median(r["loop_cpu"] for r in results[m]) for m in MODES}
    same = all(results["sync"][i]["metrics"].keys() == results["async"][i]["metrics"].keys() and all(
        float(results["sync"][i]["metrics"][k]) == float(results["async"][i]["metrics"][k])
        or results["sync"][i]["metrics"][k].isnan() for k in results["sync"][i]["metrics"])
        for i in range(args.repeats))
    lane_ms = {k: 1e3 * statistics.median(r["lanes"][k] for r in results["sync"]) / images
               for k in results["sync"][0]["lanes"]}
    for mode in MODES:
        print(f"{mode:>8}: {images} images in {wall[mode]:.2f} s ({images / wall[mode]:.1f} img/s); CPU time of "
              f"the loop's thread {cpu[mode]:.2f} s")
    ratio, ratio_sync = wall["async"] / wall["forward"], wall["sync"] / wall["forward"]
    hidden = (wall["sync"] - wall["async"]) / max(wall["sync"] - wall["forward"], 1e-9)
    print(f"eval/forward, async: {ratio:.3f} ({verdict(ratio, TARGET)}); sync: {ratio_sync:.3f}; "
          f"share of the metric time hidden: {hidden:.0%}; async == sync metrics: {same}")
    print(f"loop-thread CPU / forward-only (the critical path's own work, load-independent): async "
          f"{cpu['async'] / cpu['forward']:.3f}, sync {cpu['sync'] / cpu['forward']:.3f}")
    print("metric CPU per image (sync run): " + ", ".join(f"{k} {v:.2f} ms" for k, v in lane_ms.items())
          + f"; total {sum(lane_ms.values()):.2f} ms")
    f, k, total = args.gpu_forward_ms, args.gpu_cores, sum(lane_ms.values())
    gpu_sync = (f + total) / f
    gpu_async = max(f, total / k, lane_ms["pixel"], lane_ms["sanity"]) / f  # pixel/sanity: one thread each
    print(f"GPU-side estimate (forward {f:g} ms/img; metrics spread over {k} cores: the two box sweeps over "
          f"images, pixel and sanity one core each): sync {gpu_sync:.2f}x, async {gpu_async:.2f}x the forward "
          f"({verdict(gpu_async, TARGET)}); cores for <= {TARGET:g}: {total / (TARGET * f):.0f}")


if __name__ == "__main__":
    main()
