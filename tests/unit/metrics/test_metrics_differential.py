"""Differential tests: the fast metrics against a per-image, per-threshold re-implementation of
wsolevaluation's BoxEvaluator / MaskEvaluator loop (OpenCV contours at every threshold)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsol_lightning.metrics import MaxBoxAcc, PxAP
from wsol_lightning.metrics.functional import best_iou_per_threshold, quantize_maps


# --------------------------------------------------------------------------- reference (wsolevaluation loop)
def ref_boxes_per_threshold(scoremap: np.ndarray, thresholds: np.ndarray, multi: bool) -> list[np.ndarray]:
    height, width = scoremap.shape
    image = (scoremap * 255).astype(np.uint8)
    top = np.max(image)
    result = []
    for t in thresholds:
        _, binary = cv2.threshold(image, int(t * top), 255, cv2.THRESH_BINARY)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            result.append(np.array([[0, 0, 0, 0]]))
            continue
        if not multi:
            contours = [max(contours, key=cv2.contourArea)]
        rows = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            rows.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        result.append(np.array(rows))
    return result


def ref_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All pairs, +1 convention, zero for a non-positive union (calculate_multiple_iou)."""
    a = a[:, None, :].astype(np.int64)
    b = b[None, :, :].astype(np.int64)
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    union = (
        (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
        + (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
        - inter
    )
    safe = np.where(union > 0, union, 1)
    return np.where(union > 0, inter / safe, 0.0)


class RefBoxEvaluator:
    def __init__(self, interval: float, deltas: tuple[int, ...], multi: bool) -> None:
        self.thresholds = np.arange(0, 1, interval)
        self.deltas, self.multi = deltas, multi
        self.correct = {d: np.zeros(len(self.thresholds)) for d in deltas}
        self.cnt = 0

    def accumulate(self, scoremap: np.ndarray, gt: np.ndarray) -> None:
        per_t = ref_boxes_per_threshold(scoremap, self.thresholds, self.multi)
        best = np.array([ref_iou(boxes, gt).max() for boxes in per_t])
        for d in self.deltas:
            self.correct[d][best >= d / 100] += 1
        self.cnt += 1

    def compute(self) -> dict[int, float]:
        return {d: (self.correct[d] * 100.0 / self.cnt).max() for d in self.deltas}


def ref_pxap(maps: np.ndarray, masks: np.ndarray, interval: float) -> float:
    edges = np.append(np.arange(0, 1, interval), [1.0, 2.0, 3.0])
    pos = np.zeros(len(edges) - 1)
    neg = np.zeros(len(edges) - 1)
    for s, m in zip(maps, masks):
        pos += np.histogram(s[m == 1], bins=edges)[0]
        neg += np.histogram(s[m == 0], bins=edges)[0]
    tp, fp = pos[::-1].cumsum(), neg[::-1].cumsum()
    fn = pos.sum() - tp
    nonzero = (tp + fp) != 0
    with np.errstate(invalid="ignore"):
        precision, recall = tp / (tp + fp), tp / (tp + fn)
    return float((precision[1:] * np.diff(recall))[nonzero[1:]].sum() * 100)


# --------------------------------------------------------------------------- random maps
def smooth_maps(rng: np.random.Generator, n: int, height: int, width: int, coarse: int = 7) -> np.ndarray:
    small = torch.from_numpy(rng.random((n, 1, coarse, coarse)))
    up = F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False)[:, 0].numpy()
    up -= up.min(axis=(1, 2), keepdims=True)
    return up / up.max(axis=(1, 2), keepdims=True)


def hole_maps(rng: np.random.Generator, n: int, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
        r = np.hypot(yy - cy, xx - cx)
        ring = np.exp(-((r - rng.uniform(4, 12)) ** 2) / rng.uniform(2, 10))
        m = ring + 0.2 * rng.random((height, width))
        out.append((m - m.min()) / (m.max() - m.min()))
    return np.stack(out)


def random_boxes(rng: np.random.Generator, height: int, width: int, max_boxes: int = 3) -> np.ndarray:
    rows = []
    for _ in range(rng.integers(1, max_boxes + 1)):
        x0, x1 = np.sort(rng.integers(0, width, 2))
        y0, y1 = np.sort(rng.integers(0, height, 2))
        rows.append([x0, y0, x1, y1])
    return np.array(rows, np.int64)


def dataset(seed: int, height: int = 40, width: int = 56) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    maps = [
        smooth_maps(rng, 8, height, width),
        hole_maps(rng, 6, height, width),
        rng.random((2, height, width)),  # noise: many components and holes
        (rng.random((1, height, width)) < 0.3) * rng.random((1, height, width)),
        np.zeros((2, height, width)),  # constant / normalised-NaN maps
        np.full((1, height, width), 0.5),
    ]  # constant, not normalised
    stacked = np.concatenate(maps)
    boxes = [random_boxes(rng, height, width) for _ in range(len(stacked))]
    boxes[-1] = np.array([[0, 0, 0, 0], [0, 0, 3, 3]])  # the (0, 0, 0, 0) no-contour box can score
    return stacked, boxes


@pytest.mark.parametrize("interval", [0.01, 0.001])
@pytest.mark.parametrize("multi", [True, False])
def test_maxboxacc_equals_reference(interval: float, multi: bool) -> None:
    size = (40, 56) if interval == 0.01 else (24, 30)  # the reference loop is slow at 0.001
    maps, boxes = dataset(int(interval * 1000) + multi, *size)
    deltas = (30, 50, 70) if multi else (50,)
    ref = RefBoxEvaluator(interval, deltas, multi)
    for s, b in zip(maps, boxes):
        ref.accumulate(s, b)
    metric = MaxBoxAcc(iou_thresholds=deltas, cam_curve_interval=interval, multi_contour=multi)
    for start in range(0, len(maps), 5):  # several batches
        metric.update(
            torch.from_numpy(maps[start : start + 5]), [torch.from_numpy(b) for b in boxes[start : start + 5]]
        )
    out = metric.compute()
    expected = ref.compute()
    for d in deltas:
        assert abs(float(out[f"maxboxacc@{d}"]) - expected[d]) < 1e-9
        np.testing.assert_array_equal(metric.gt_known_hits[deltas.index(d)].numpy(), ref.correct[d])
    assert abs(float(out["maxboxacc_v2"]) - float(np.mean([expected[d] for d in deltas]))) < 1e-9


@pytest.mark.parametrize("seed", range(3))
def test_best_iou_per_threshold_equals_reference_float32(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    maps = np.concatenate([smooth_maps(rng, 3, 31, 23), rng.random((1, 31, 23))]).astype(np.float32)
    boxes = [random_boxes(rng, 31, 23, max_boxes=4) for _ in maps]
    thresholds = np.arange(0, 1, 0.001)
    for multi in (True, False):
        fast = best_iou_per_threshold(quantize_maps(maps), boxes, thresholds, multi)
        for i, (s, b) in enumerate(zip(maps, boxes)):
            ref = np.array([ref_iou(x, b).max() for x in ref_boxes_per_threshold(s, thresholds, multi)])
            np.testing.assert_array_equal(fast[i], ref)


def test_full_size_smooth_maps_at_0_01() -> None:
    rng = np.random.default_rng(7)
    maps = smooth_maps(rng, 3, 224, 224, coarse=14)
    boxes = [random_boxes(rng, 224, 224) for _ in maps]
    ref = RefBoxEvaluator(0.01, (30, 50, 70), True)
    for s, b in zip(maps, boxes):
        ref.accumulate(s, b)
    metric = MaxBoxAcc(cam_curve_interval=0.01)
    metric.update(torch.from_numpy(maps), [torch.from_numpy(b) for b in boxes])
    for i, d in enumerate((30, 50, 70)):
        np.testing.assert_array_equal(metric.gt_known_hits[i].numpy(), ref.correct[d])


@pytest.mark.parametrize("interval", [0.01, 0.001])
def test_pxap_equals_reference(interval: float) -> None:
    rng = np.random.default_rng(3)
    maps = np.concatenate([smooth_maps(rng, 5, 32, 40), rng.random((2, 32, 40)), np.ones((1, 32, 40))])
    maps[0, 0, :5] = [0.0, 1.0, 0.5, 0.001, 0.999]  # grid values and both ends
    masks = rng.choice(np.array([0, 1, 255], np.uint8), size=maps.shape, p=[0.5, 0.4, 0.1])
    metric = PxAP(cam_curve_interval=interval)
    metric.update(torch.from_numpy(maps[:4]), torch.from_numpy(masks[:4]))
    metric.update(torch.from_numpy(maps[4:]).float(), torch.from_numpy(masks[4:]))
    expected = ref_pxap(np.concatenate([maps[:4], maps[4:].astype(np.float32)]), masks, interval)
    assert abs(float(metric.compute()["pxap"]) - expected) < 1e-9
