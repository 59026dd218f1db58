"""MaxBoxAcc V1 and V2 per image, single thread, side by side with the real wsolevaluation evaluator.

Maps: random ``g x g`` grids, one family per ``--grids`` entry (default 14, 7 and 28: VGG16/InceptionV3
CAMs at 224 px, a plain ResNet50, the wsolevaluation ResNet50 with a stride-1 layer 4), bicubic-upsampled
to 224x224 and min-max normalised (what a CAM looks like after the protocol's resize). GT: one to three
random boxes per image. For each family, mode (V2: IoU 30/50/70, every contour; V1: IoU 50, largest
contour) and interval, the script times

* ``reference``: clovaai/wsolevaluation's own ``BoxEvaluator.accumulate`` (imported from the clone given
  by ``--reference``, run unchanged; only ``np.float`` is restored in memory for numpy >= 1.24 and a
  minimal ``munch`` is provided if absent). Skipped when no clone is given.
* ``ours``: ``MaxBoxAcc.update`` on the same float maps (validation, quantisation, sweep, counters).
* ``floor``: quantisation plus one union-find labelling pass over the map, scoring nothing.
* ``sweep``: the sweep kernel alone on the quantised maps (V1 included: it traces the contours it needs
  itself, no OpenCV call), so ``ours - sweep`` is validation, quantisation and the counters.

and checks that the reference's per-threshold hit counters equal ours before printing each row.
Everything runs on one thread (torch, OpenCV, the sweep); times are this process's CPU time per image.
Targets (issue 16): ours >= 100x the reference at interval 0.001 and >= 20x at 0.01; ours <= 2x the
one-pass floor.

    python benchmarks/metrics.py --reference /path/to/wsolevaluation            # 16 maps, 3 families
    python benchmarks/metrics.py --reference ../official/wsolevaluation --images 32 --repeat 5
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from _common import machine, verdict

from wsol_lightning.metrics import MaxBoxAcc
from wsol_lightning.metrics._checks import check_boxes
from wsol_lightning.metrics._sweep import NUM_LEVELS, best_iou_per_level_sweep
from wsol_lightning.metrics.functional import cam_thresholds, quantize_maps, threshold_levels

TARGETS = {0.001: 100.0, 0.01: 20.0}
FLOOR_TARGET = 2.0


def make_maps(n: int, seed: int = 0, size: int = 224, grid: int = 14) -> tuple[np.ndarray, list[np.ndarray]]:
    """``n`` smooth float64 maps ``(n, size, size)`` in [0, 1] (bicubic from ``grid x grid``), 1-3 GT boxes each."""
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.random((n, 1, grid, grid)))
    maps = F.interpolate(small, size=(size, size), mode="bicubic", align_corners=False)[:, 0].numpy()
    maps -= maps.min(axis=(1, 2), keepdims=True)
    maps /= maps.max(axis=(1, 2), keepdims=True)
    boxes = []
    for _ in range(n):
        rows = []
        for _ in range(rng.integers(1, 4)):
            x0, x1 = np.sort(rng.integers(0, size, 2))
            y0, y1 = np.sort(rng.integers(0, size, 2))
            rows.append([x0, y0, x1, y1])
        boxes.append(np.array(rows, np.int64))
    return maps, boxes


def load_reference(clone: Path) -> Any:
    """wsolevaluation's ``evaluation`` module from a local clone (numpy/munch shims in memory only)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tools.parity._official import import_from, stub_munch

    if not hasattr(np, "float"):
        np.float = float  # type: ignore[attr-defined]  # removed in numpy 1.24; the reference checks dtypes with it
    stub_munch()
    return import_from(clone, "evaluation")


def reference_counts(evaluation: Any, maps: np.ndarray, boxes: list[np.ndarray], interval: float,
                     deltas: tuple[int, ...], multi: bool) -> np.ndarray:
    """The reference ``BoxEvaluator.accumulate`` over every map; ``(D, T)`` hit counters."""
    ev = evaluation.BoxEvaluator.__new__(evaluation.BoxEvaluator)  # its __init__ reads metadata files only
    ev.cam_threshold_list = list(np.arange(0, 1, interval))
    ev.iou_threshold_list = list(deltas)
    ev.multi_contour_eval = multi
    ev.num_correct = {d: np.zeros(len(ev.cam_threshold_list)) for d in deltas}
    ev.cnt = 0
    ev.gt_bboxes = {str(i): [tuple(int(v) for v in b) for b in gt] for i, gt in enumerate(boxes)}
    for i, scoremap in enumerate(maps):
        ev.accumulate(scoremap, str(i))
    return np.stack([ev.num_correct[d] for d in deltas])


def our_counts(maps: np.ndarray, boxes: list[np.ndarray], interval: float, deltas: tuple[int, ...],
               multi: bool) -> np.ndarray:
    metric = MaxBoxAcc(iou_thresholds=deltas, cam_curve_interval=interval, multi_contour=multi, num_threads=1)
    metric.update(torch.from_numpy(maps), [torch.from_numpy(b) for b in boxes])
    return metric.gt_known_hits.numpy()


def one_pass(maps: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
    """Quantise and label every level once (8-connected union-find sweep), scoring nothing."""
    gt, offsets = check_boxes(boxes, len(maps))
    want = np.zeros((len(maps), NUM_LEVELS), np.bool_)
    return best_iou_per_level_sweep(quantize_maps(maps), gt, offsets, "one_pass", want, num_threads=1)


def best_time(fn: Callable[..., np.ndarray], repeat: int, *args: object) -> tuple[float, np.ndarray]:
    """Best of ``repeat`` runs, in seconds of this process's CPU time (one thread: on a machine shared with
    other jobs, wall time mostly measures the queue for a core, on both sides of a ratio)."""
    times, result = [], np.zeros(0)
    for _ in range(repeat):
        start = time.process_time()
        result = fn(*args)
        times.append(time.process_time() - start)
    return min(times), result


def sweep_only(maps: np.ndarray, boxes: list[np.ndarray], interval: float, multi: bool) -> np.ndarray:
    """The sweep kernel alone (what ``update`` runs after quantisation, before the counters)."""
    u = quantize_maps(maps)
    gt, offsets = check_boxes(boxes, len(maps))
    levels = (cam_thresholds(interval)[None, :] * u.reshape(len(u), -1).max(axis=1)[:, None]).astype(np.int64)
    want = np.zeros((len(maps), NUM_LEVELS), np.bool_)
    np.put_along_axis(want, levels, True, axis=1)
    return best_iou_per_level_sweep(u, gt, offsets, "tree" if multi else "largest", want, num_threads=1)


def mean_run(maps: np.ndarray, interval: float | None) -> float:
    """Mean length (pixels) of the maximal horizontal runs of equal uint8 value, or of equal scored bin.

    The scored bin of ``U`` is the number of grid levels ``int(t * 255)`` below it: two pixels in the same
    bin are on together at every scored level, so a run of one bin could be one union-find node.
    """
    u = quantize_maps(maps)
    if interval is not None:
        u = np.searchsorted(np.unique(threshold_levels(interval)), u, side="left")
    runs = (u[:, :, 1:] != u[:, :, :-1]).sum() + u.shape[0] * u.shape[1]
    return u.size / runs


def run_family(args: argparse.Namespace, evaluation: Any, grid: int) -> None:
    """Print the floor and one row per mode and interval for the maps upsampled from ``grid x grid``."""
    n = args.images
    maps, boxes = make_maps(n, grid=grid)
    t_floor = best_time(one_pass, args.repeat, maps, boxes)[0] / n
    print(f"\nfamily {grid}x{grid} -> 224x224: one-pass floor (quantise + one 8-connected union-find "
          f"labelling pass): {1e3 * t_floor:.3f} ms/img; {machine().rsplit('; ', 1)[1]}")
    print(f"mean horizontal run: {mean_run(maps, None):.2f} px of equal uint8 value, "
          + ", ".join(f"{mean_run(maps, i):.2f} px of equal scored bin at {i}" for i in args.intervals))
    print(f"{'mode':<4} {'interval':>8} {'reference ms':>12} {'ours ms':>8} {'sweep ms':>8} {'ratio':>8}  "
          f"{'target':<22} {'ours/floor':>10}  target")
    for mode in args.modes:
        multi = mode == "v2"
        deltas = (30, 50, 70) if multi else (50,)
        for interval in args.intervals:
            t_ours, ours = best_time(our_counts, args.repeat, maps, boxes, interval, deltas, multi)
            t_ours /= n
            t_sweep = best_time(sweep_only, args.repeat, maps, boxes, interval, multi)[0] / n
            ref_cols = f"{'-':>12} {1e3 * t_ours:>8.3f} {1e3 * t_sweep:>8.3f} {'-':>8}  {'(no reference)':<22}"
            if evaluation is not None:
                t_ref, ref = best_time(reference_counts, 1, evaluation, maps, boxes, interval, deltas, multi)
                t_ref /= n
                if not np.array_equal(ref, ours):
                    raise SystemExit(f"MISMATCH {mode} {interval} grid {grid}: hit counters differ from the reference")
                target = TARGETS.get(interval, 20.0)
                ratio = t_ref / t_ours
                ref_cols = (f"{1e3 * t_ref:>12.2f} {1e3 * t_ours:>8.3f} {1e3 * t_sweep:>8.3f} {ratio:>7.1f}x  "
                            f"{verdict(ratio, target, higher_is_worse=False):<22}")
            floor = t_ours / t_floor
            print(f"{mode:<4} {interval:>8} {ref_cols} {floor:>9.2f}x  {verdict(floor, FLOOR_TARGET)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=None, help="local clone of clovaai/wsolevaluation")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for ours and the floor (reference: 1)")
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.001, 0.01])
    parser.add_argument("--modes", nargs="+", default=["v1", "v2"], choices=["v1", "v2"])
    parser.add_argument("--grids", type=int, nargs="+", default=[14, 7, 28],
                        help="map families: random g x g grids upsampled to 224x224")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    evaluation = load_reference(args.reference) if args.reference else None
    maps, boxes = make_maps(2)
    for multi in (True, False):  # numba load/compile outside the timings
        our_counts(maps, boxes, 0.01, (50,), multi)
        sweep_only(maps, boxes, 0.01, multi)
    one_pass(maps, boxes)
    print(machine())
    print(f"{args.images} maps per family, per image, one thread, CPU time (best of {args.repeat}; reference: 1 run), "
          f"OpenCV {cv2.__version__}; reference: {args.reference or 'not given (column skipped)'}")
    for grid in args.grids:
        run_family(args, evaluation, grid)
    if evaluation is not None:
        print("\nhit counters identical to the reference in every row")
    print(machine())


if __name__ == "__main__":
    main()
