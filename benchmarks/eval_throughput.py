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

It also times the metric work (CPU time of the thread doing it, ``time.thread_time``, so load does not
inflate it) and from it gives the GPU-side estimate: on a GPU the forward pass shrinks to ``--gpu_forward_ms``
per image while the metrics stay on the CPU, with ``--gpu_cores`` cores and ``torch.get_num_threads()`` equal
to them. Synchronously an image costs ``forward + all metric work``. With the lanes the work is in two kinds:

* split over the cores: the two box sweeps (``MaxBoxAcc.update`` spreads a batch's images over threads) and
  the image parts of PxAP and the sanity counters (``LocalizationEvaluator`` spreads consecutive image ranges
  over a pool: checks, histograms, border masses, whole-image levels, the centre baseline's histograms);
* serial on one lane each: the rest of each box update (checks, quantisation, hit counts), adding the pixel
  histograms, adding the sanity parts (with the reference boxes' scoring).

An image then costs ``max(forward, all work / cores, max over lanes of (serial + split share / cores))``;
the figure the previous layout (PxAP and sanity counters one lane each) would give is printed beside it.
This CPU's per-image times are used (a server core is likely faster: pessimistic).
The operating threshold is fixed, so no val pass runs first. The reference baselines' per-size caches
(:data:`CACHES`) are built once, in the warm-up run, as in any evaluation longer than a few dozen images.

    nice -n 10 python benchmarks/eval_throughput.py                       # resnet18, 224 px, 36 images
    nice -n 10 python benchmarks/eval_throughput.py --previous --repeats 5  # + the previous lane layout
    python benchmarks/eval_throughput.py --backbone resnet50 --images_per_class 60 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import lightning as L
from _common import machine, set_threads, synthetic_datamodule, verdict

TARGET = 1.10
MODES = ("forward", "sync", "async")
#: timed in the sync run (whole updates and the sweeps in them); the rest in the async run
SYNC_TIMED = ("box", "box_outer", "pixel", "sanity", "box_sweep", "box_outer_sweep")


def timed(fn: Callable[..., Any], bucket: list[float], lock: threading.Lock) -> Callable[..., Any]:
    """``fn`` recording the CPU time of its thread in ``bucket`` (thread-safe: lanes call it from their threads)."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            with lock:
                bucket.append(time.thread_time() - t0)

    return wrapper


#: what is timed: in the sync run each metric's whole update; in the async run the lanes' serial steps, the
#: sweeps inside the box updates and the image parts (see the module docstring).
TIMED = ("box", "box_outer", "pixel", "sanity", "box_sweep", "box_outer_sweep", "parts", "pixel_add", "sanity_add")


def instrument(model: Any, spent: dict[str, list[float]], lock: threading.Lock) -> Callable[[], None]:
    """Wrap the metric entry points of ``model``'s evaluator with :func:`timed`; returns the undo of the
    one module-level wrap (the sweep function)."""
    import wsol_lightning.metrics.functional as F  # noqa: N812 - the box metric calls F.best_iou_per_threshold

    evaluator = model.evaluator
    for name in ("box", "box_outer", "pixel", "sanity"):
        metric = getattr(evaluator, name)
        metric.update = timed(metric.update, spent[name], lock)
    evaluator.pixel.add_histograms = timed(evaluator.pixel.add_histograms, spent["pixel_add"], lock)
    evaluator.sanity.add_parts = timed(evaluator.sanity.add_parts, spent["sanity_add"], lock)
    evaluator._image_part = timed(evaluator._image_part, spent["parts"], lock)
    sweep = F.best_iou_per_threshold
    outer = timed(sweep, spent["box_outer_sweep"], lock)
    inner = timed(sweep, spent["box_sweep"], lock)
    F.best_iou_per_threshold = lambda *a, **k: (outer if k.get("outer_only") else inner)(*a, **k)
    return lambda: setattr(F, "best_iou_per_threshold", sweep)


#: the reference baselines' per-image-size caches (their boxes at the 256 levels, their pixels' bins), shared
#: across the runs' fresh models: built once per process (2 x 256 OpenCV calls at 224 px, ~0.5 ms/img over
#: these 36 images, nothing over a real split), not per image, so no run pays them.
CACHES: dict[str, dict] = {"centre_box": {}, "whole_box": {}, "centre_pixel": {}}


def share_reference_caches(model: Any) -> None:
    """Point the reference baselines' caches of ``model`` at :data:`CACHES` (filled by the warm-up run)."""
    for name, cache in CACHES.items():
        metric = getattr(model.evaluator.sanity, name)
        setattr(metric, "_pixel_bins" if name == "centre_pixel" else "_level_boxes", cache)


def previous_layout(evaluator: Any, maps: Any, masks: Any, top1: Any, logits: Any, kept: Any, context: str) -> None:
    """The lane layout before the split (``--previous``): PxAP's and the sanity counters' whole updates, one lane
    each (in place of ``LocalizationEvaluator._split_update``)."""
    if masks is not None:
        evaluator._submit("pixel", context, lambda: evaluator.pixel.update(maps, masks))
    evaluator._submit("sanity", context, lambda: evaluator.sanity.update(maps, logits, top1, kept, masks))


def run(args: argparse.Namespace, mode: str, data: Any) -> dict[str, Any]:
    """One ``trainer.test`` in ``mode``; returns wall seconds and the CPU seconds of each timed step."""
    from wsol_lightning.methods import CAM

    L.seed_everything(0, verbose=False)  # the same weights in every mode
    model = CAM(backbone=args.backbone, num_classes=4, cam_curve_interval=args.interval, operating_threshold=0.5,
                async_metrics=mode in ("async", "previous"))
    spent: dict[str, list[float]] = {name: [] for name in TIMED}
    restore = instrument(model, spent, threading.Lock())
    share_reference_caches(model)
    if mode == "previous":
        model.evaluator._split_update = partial(previous_layout, model.evaluator)
    if mode == "forward":
        model.evaluator.update = lambda *a, **k: None  # the floor: everything but the localisation metrics
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        trainer.test(model, datamodule=data, verbose=False)
    finally:
        restore()
    return {"total": time.perf_counter() - t0, "loop_cpu": time.thread_time() - c0,
            "spent": {k: sum(v) for k, v in spent.items()}, "metrics": dict(trainer.callback_metrics)}


def gpu_estimate(ms: dict[str, float], forward: float, cores: int) -> dict[str, float]:
    """Per-image cost over the forward's, from per-image CPU ms of the sync (whole updates) and async steps.

    Returns:
        ``sync`` (every update inline), ``one_lane`` (the previous layout: PxAP and the sanity counters on
        one lane each, only the box sweeps split) and ``split`` (this layout), each a ratio to ``forward``.

    """
    whole = ms["box"] + ms["box_outer"] + ms["pixel"] + ms["sanity"]  # sync: every update inline
    one_lane = max(forward, whole / cores, ms["pixel"], ms["sanity"],
                   ms["box"] - ms["box_sweep"] + ms["box_sweep"] / cores,
                   ms["box_outer"] - ms["box_outer_sweep"] + ms["box_outer_sweep"] / cores)
    box_serial = ms["box"] - ms["box_sweep"]  # measured in the sync run: the same calls
    outer_serial = ms["box_outer"] - ms["box_outer_sweep"]
    work = ms["box"] + ms["box_outer"] + ms["parts"] + ms["pixel_add"] + ms["sanity_add"]
    lanes = (box_serial + ms["box_sweep"] / cores, outer_serial + ms["box_outer_sweep"] / cores,
             ms["pixel_add"] + ms["parts"] / cores, ms["sanity_add"] + ms["parts"] / cores)
    split = max(forward, work / cores, *lanes)
    return {"sync": (forward + whole) / forward, "one_lane": one_lane / forward, "split": split / forward,
            "work": work, "whole": whole, "lane": max(lanes)}


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
    parser.add_argument("--previous", action="store_true",
                        help="also time the previous lane layout (PxAP, sanity counters one lane each), interleaved")
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
    modes = MODES + (("previous",) if args.previous else ())
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:  # interleaved, so a change of load hits every mode alike
            results[mode].append(run(args, mode, data))
    wall = {m: statistics.median(r["total"] for r in results[m]) for m in modes}
    cpu = {m: statistics.median(r["loop_cpu"] for r in results[m]) for m in modes}
    same = all(results["sync"][i]["metrics"].keys() == results["async"][i]["metrics"].keys() and all(
        float(results["sync"][i]["metrics"][k]) == float(results["async"][i]["metrics"][k])
        or results["sync"][i]["metrics"][k].isnan() for k in results["sync"][i]["metrics"])
        for i in range(args.repeats))
    ms = {k: 1e3 * statistics.median(r["spent"][k] for r in results["sync" if k in SYNC_TIMED else "async"])
          / images for k in TIMED}
    for mode in modes:
        print(f"{mode:>8}: {images} images in {wall[mode]:.2f} s ({images / wall[mode]:.1f} img/s); CPU time of "
              f"the loop's thread {cpu[mode]:.2f} s")
    ratio, ratio_sync = wall["async"] / wall["forward"], wall["sync"] / wall["forward"]
    metric_wall = wall["sync"] - wall["forward"]  # <= 0 when the load swamps the metrics' share
    hidden = f"{(wall['sync'] - wall['async']) / metric_wall:.0%}" if metric_wall > 0.02 * wall["forward"] else "n/a"
    print(f"eval/forward, async: {ratio:.3f} ({verdict(ratio, TARGET)}); sync: {ratio_sync:.3f}; "
          f"share of the metric time hidden: {hidden}; async == sync metrics: {same}")
    print(f"loop-thread CPU / forward-only (the critical path's own work, load-independent): async "
          f"{cpu['async'] / cpu['forward']:.3f}, sync {cpu['sync'] / cpu['forward']:.3f}")
    if args.previous:
        print(f"previous layout (PxAP, sanity counters one lane each): eval/forward "
              f"{wall['previous'] / wall['forward']:.3f}, loop-thread CPU {cpu['previous'] / cpu['forward']:.3f}")
    print("metric CPU per image, whole updates (sync run): " + ", ".join(f"{k} {ms[k]:.2f} ms" for k in SYNC_TIMED[:4])
          + f"; of which box sweeps {ms['box_sweep']:.2f} + {ms['box_outer_sweep']:.2f} ms")
    print(f"metric CPU per image, lanes (async run): image parts of pixel + sanity {ms['parts']:.2f} ms (split), "
          f"pixel add {ms['pixel_add']:.3f} ms, sanity add {ms['sanity_add']:.3f} ms (serial)")
    f, k = args.gpu_forward_ms, args.gpu_cores
    est = gpu_estimate(ms, f, k)
    print(f"metric work per image: {est['whole']:.2f} ms inline, {est['work']:.2f} ms with the lanes (pixel and "
          f"sanity parts check the maps and masks once); busiest lane {est['lane']:.2f} ms with {k} cores")
    print(f"GPU-side estimate (forward {f:g} ms/img, {k} cores): sync {est['sync']:.2f}x; previous lanes (PxAP, "
          f"sanity one lane each) {est['one_lane']:.2f}x; split lanes {est['split']:.2f}x the forward "
          f"({verdict(est['split'], TARGET)}); cores for <= {TARGET:g}: {est['work'] / (TARGET * f):.1f}")

if __name__ == "__main__":
    main()
