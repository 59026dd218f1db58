"""Time MaxBoxAcc against a straightforward per-threshold OpenCV loop (wsolevaluation's algorithm).

Maps: random 14x14 grids, bicubic-upsampled to 224x224 and min-max normalised (what a CAM looks like
after the protocol's resize). GT: one to three random boxes per image. Both implementations see the same
maps in the same run; their per-threshold hit counters are checked to be equal before timing is printed.

    python benchmarks/metrics.py                     # 32 images, intervals 0.001 and 0.01, V2 and V1
    python benchmarks/metrics.py --images 64 --repeat 3 --modes v2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from wsol_lightning.metrics import MaxBoxAcc


def make_maps(n: int, seed: int = 0, size: int = 224) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.random((n, 1, 14, 14)))
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


def opencv_loop(maps: np.ndarray, boxes: list[np.ndarray], interval: float, deltas: tuple[int, ...],
                multi: bool) -> np.ndarray:
    """The per-image, per-threshold loop: threshold, findContours, boundingRect, IoU, counters."""
    thresholds = np.arange(0, 1, interval)
    counts = np.zeros((len(deltas), len(thresholds)))
    for scoremap, gt in zip(maps, boxes):
        height, width = scoremap.shape
        image = (scoremap * 255).astype(np.uint8)
        best = np.zeros(len(thresholds))
        for t_index, t in enumerate(thresholds):
            _, binary = cv2.threshold(image, int(t * np.max(image)), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            if len(contours) == 0:
                pred = np.zeros((1, 4), np.int64)
            else:
                if not multi:
                    contours = [max(contours, key=cv2.contourArea)]
                rects = np.array([cv2.boundingRect(c) for c in contours])
                pred = np.stack([rects[:, 0], rects[:, 1], np.minimum(rects[:, 0] + rects[:, 2], width - 1),
                                 np.minimum(rects[:, 1] + rects[:, 3], height - 1)], axis=1)
            iw = np.maximum(0, np.minimum(pred[:, None, 2], gt[None, :, 2])
                            - np.maximum(pred[:, None, 0], gt[None, :, 0]) + 1)
            ih = np.maximum(0, np.minimum(pred[:, None, 3], gt[None, :, 3])
                            - np.maximum(pred[:, None, 1], gt[None, :, 1]) + 1)
            inter = iw * ih
            union = ((pred[:, None, 2] - pred[:, None, 0] + 1) * (pred[:, None, 3] - pred[:, None, 1] + 1)
                     + (gt[None, :, 2] - gt[None, :, 0] + 1) * (gt[None, :, 3] - gt[None, :, 1] + 1) - inter)
            best[t_index] = np.where(union > 0, inter / np.maximum(union, 1), 0.0).max()
        for d_index, d in enumerate(deltas):
            counts[d_index] += best >= d / 100
    return counts


def fast(maps: np.ndarray, boxes: list[np.ndarray], interval: float, deltas: tuple[int, ...], multi: bool,
         batch: int, threads: int | None = None) -> np.ndarray:
    metric = MaxBoxAcc(iou_thresholds=deltas, cam_curve_interval=interval, multi_contour=multi,
                       num_threads=threads)
    cams = torch.from_numpy(maps)
    gt = [torch.from_numpy(b) for b in boxes]
    for start in range(0, len(maps), batch):
        metric.update(cams[start:start + batch], gt[start:start + batch])
    return metric.gt_known_hits.numpy()


def best_time(fn: Callable[..., np.ndarray], repeat: int, *args: object) -> tuple[float, np.ndarray]:
    times, result = [], np.zeros(0)
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2, help="best of N for each timing")
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.001, 0.01])
    parser.add_argument("--modes", nargs="+", default=["v2", "v1"], choices=["v2", "v1"])
    parser.add_argument("--threads", type=int, default=None, help="V2 sweep threads (default: torch's)")
    args = parser.parse_args()
    maps, boxes = make_maps(args.images)
    fast(maps[:2], boxes[:2], 0.01, (50,), True, 2)  # numba load/compile outside the timings
    threads = args.threads or torch.get_num_threads()
    print(f"{args.images} maps 224x224 (bicubic 14x14, min-max), V2 sweep on {threads} thread(s), "
          f"OpenCV {cv2.__version__}, best of {args.repeat}")
    print(f"{'mode':<4} {'interval':>8} {'opencv img/s':>13} {'ms/img':>8} {'fast img/s':>11} {'ms/img':>8} "
          f"{'ratio':>7}")
    for mode in args.modes:
        multi = mode == "v2"
        deltas = (30, 50, 70) if multi else (50,)
        for interval in args.intervals:
            t_ref, ref = best_time(opencv_loop, 1, maps, boxes, interval, deltas, multi)
            t_fast, got = best_time(fast, args.repeat, maps, boxes, interval, deltas, multi, args.batch,
                                    threads)
            if not np.array_equal(ref, got):
                raise SystemExit(f"MISMATCH {mode} {interval}: counters differ")
            n = args.images
            print(f"{mode:<4} {interval:>8} {n / t_ref:>13.1f} {1e3 * t_ref / n:>8.2f} {n / t_fast:>11.1f} "
                  f"{1e3 * t_fast / n:>8.2f} {t_ref / t_fast:>6.1f}x")
    print("counters identical in every row")


if __name__ == "__main__":
    main()
