"""Pure localisation-metric functions, number for number equal to clovaai/wsolevaluation.

Conventions (wsolevaluation's): a score map is a float ``(H, W)`` array in [0, 1]; it is quantised as
``U = uint8(map * 255)`` (truncation); a threshold ``t`` from ``arange(0, 1, interval)`` (float64)
becomes the integer level ``int(t * max(U))`` and a pixel is on iff ``U > level``. Boxes are integer
``x0, y0, x1, y1`` with inclusive corners; IoU uses the ``+1`` pixel convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from wsol_lightning.metrics._checks import ArrayLike, check_boxes, to_numpy
from wsol_lightning.metrics._histograms import (
    piou_from_histograms,
    pixel_histograms,
    precision_recall_from_histograms,
    pxap_from_histograms,
)
from wsol_lightning.metrics._sweep import NUM_LEVELS, best_iou_per_level_sweep

__all__ = [
    "cam_thresholds", "threshold_levels", "normalize_maps", "quantize_maps", "boxes_from_map",
    "boxes_at_threshold", "box_iou_inclusive", "iou_matrix", "best_iou_per_level", "best_iou_per_threshold",
    "scale_boxes_wsolevaluation", "pixel_histograms", "precision_recall_from_histograms",
    "pxap_from_histograms", "piou_from_histograms",
]


def cam_thresholds(interval: float) -> np.ndarray:
    """Return the threshold grid ``np.arange(0, 1, interval)`` (float64, ``(T,)``; 1.0 is never included)."""
    if not 0 < interval < 1:
        raise ValueError(f"cam_curve_interval must be in (0, 1); got {interval}.")
    return np.arange(0, 1, interval)


def threshold_levels(interval: float, max_level: int = 255) -> np.ndarray:
    """Integer binarisation levels ``int(t * max_level)`` of the grid, ``(T,)`` int64.

    ``max_level`` is ``max(uint8(map * 255))`` of the image (255 for a min-max normalised map).
    """
    return (cam_thresholds(interval) * float(max_level)).astype(np.int64)


def normalize_maps(maps: ArrayLike) -> ArrayLike:
    """Min-max normalise each map as wsolevaluation does: ``(m - min) / max(m - min)``.

    A constant map, or one holding a NaN or infinite value, becomes all zeros (wsolevaluation maps NaN and
    constant maps to zeros; infinite values are treated like NaN here).

    Args:
        maps: ``(..., H, W)`` float tensor or array.

    Returns:
        Same type, shape and dtype, values in [0, 1].

    """
    is_tensor = isinstance(maps, Tensor)
    x = maps if is_tensor else torch.from_numpy(np.array(maps, copy=True))
    if x.ndim < 2:
        raise ValueError(f"maps must have shape (..., H, W); got {tuple(x.shape)}.")
    flat = x.reshape(-1, x.shape[-2] * x.shape[-1])
    finite = torch.isfinite(flat).all(dim=1)
    safe = torch.where(finite[:, None], flat, torch.zeros_like(flat))
    shifted = safe - safe.amin(dim=1, keepdim=True)
    top = shifted.amax(dim=1, keepdim=True)
    valid = finite & (top[:, 0] > 0)
    out = torch.where(valid[:, None], shifted / torch.where(valid[:, None], top, torch.ones_like(top)),
                      torch.zeros_like(flat)).reshape(x.shape)
    return out if is_tensor else out.numpy()


def quantize_maps(maps: ArrayLike) -> np.ndarray:
    """``uint8(maps * 255)`` with truncation, in the maps' own float dtype; C-contiguous numpy."""
    return np.ascontiguousarray((to_numpy(maps) * 255).astype(np.uint8))


def _contours(map_uint8: np.ndarray, level: int, outer_only: bool = False) -> Sequence[np.ndarray]:
    _, binary = cv2.threshold(map_uint8, int(level), 255, cv2.THRESH_BINARY)
    mode = cv2.RETR_EXTERNAL if outer_only else cv2.RETR_TREE
    return cv2.findContours(binary, mode, cv2.CHAIN_APPROX_SIMPLE)[-2]


def _contour_box(contour: np.ndarray, height: int, width: int) -> list[int]:
    x, y, w, h = cv2.boundingRect(contour)
    return [x, y, min(x + w, width - 1), min(y + h, height - 1)]


def boxes_from_map(map_uint8: np.ndarray, level: int, multi_contour: bool = True,
                   outer_only: bool = False) -> np.ndarray:
    """Mine boxes from one quantised map at one integer level with OpenCV, exactly as wsolevaluation.

    Args:
        map_uint8: ``(H, W)`` uint8 map (``uint8(map * 255)``).
        level: integer level; a pixel is on iff ``map_uint8 > level``.
        multi_contour: every ``RETR_TREE`` contour, holes included (V2), or only the largest by
            ``cv2.contourArea`` (V1, ties to the first in OpenCV order).
        outer_only: ``RETR_EXTERNAL`` instead of ``RETR_TREE``: outer contours of the top-level
            components only (no hole contour, nothing nested inside a hole).

    Returns:
        ``(k, 4)`` int64 boxes ``x0, y0, x1, y1`` in OpenCV's contour order; ``[[0, 0, 0, 0]]`` when no
        pixel is on.

    """
    u = np.ascontiguousarray(to_numpy(map_uint8), dtype=np.uint8)
    height, width = u.shape
    contours = _contours(u, level, outer_only)
    if len(contours) == 0:
        return np.zeros((1, 4), np.int64)
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    return np.array([_contour_box(c, height, width) for c in contours], np.int64)


def boxes_at_threshold(scoremap: ArrayLike, threshold: float, multi_contour: bool = True,
                       keep_empty: bool = True) -> Tensor:
    """Boxes of one normalised float map at one threshold in [0, 1), largest contour first.

    The map is quantised and the threshold turned into ``int(threshold * max(U))`` exactly as in
    wsolevaluation; used for prediction/export with the operating threshold chosen on val.

    Args:
        scoremap: ``(H, W)`` float map in [0, 1].
        threshold: operating threshold.
        multi_contour: all contours (V2) or only the largest (V1).
        keep_empty: return ``[[0, 0, 0, 0]]`` (wsolevaluation) when nothing is on; else ``(0, 4)``.

    Returns:
        ``(k, 4)`` int64 tensor, sorted by decreasing ``cv2.contourArea`` (stable).

    """
    u = quantize_maps(to_numpy(scoremap)[None])[0]
    height, width = u.shape
    contours = _contours(u, int(threshold * np.max(u)))
    if len(contours) == 0:
        return torch.zeros((1 if keep_empty else 0, 4), dtype=torch.int64)
    areas = np.array([cv2.contourArea(c) for c in contours])
    order = np.argsort(-areas, kind="stable")[: None if multi_contour else 1]
    return torch.tensor([_contour_box(contours[i], height, width) for i in order], dtype=torch.int64)


def box_iou_inclusive(pred: ArrayLike, gt: ArrayLike) -> np.ndarray:
    """All-pairs IoU with the ``+1`` pixel convention (wsolevaluation's ``calculate_multiple_iou``).

    Args:
        pred: ``(n_a, 4)`` integer boxes ``x0, y0, x1, y1``.
        gt: ``(n_b, 4)`` integer boxes.

    Returns:
        ``(n_a, n_b)`` float64; a non-positive union gives 0.

    Raises:
        ValueError: negative coordinates or ``x1 < x0`` / ``y1 < y0``.

    """
    a = to_numpy(pred).astype(np.int64).reshape(-1, 4)
    b = to_numpy(gt).astype(np.int64).reshape(-1, 4)
    for name, boxes in (("pred", a), ("gt", b)):
        if (boxes < 0).any() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
            raise ValueError(f"{name} boxes must be non-negative x0, y0, x1, y1 with x1 >= x0, y1 >= y0.")
    return iou_matrix(a, b)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unchecked ``+1``-convention IoU of ``(n_a, 4)`` against ``(n_b, 4)`` boxes (int or float)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    iw = np.maximum(0, hi[..., 0] - lo[..., 0] + 1)
    ih = np.maximum(0, hi[..., 1] - lo[..., 1] + 1)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    denom = area_a[:, None] + area_b[None, :] - inter
    return np.where(denom > 0, inter / np.where(denom > 0, denom, 1), 0.0)


def _sweep_mode(multi_contour: bool, outer_only: bool) -> str:
    if not multi_contour:
        return "largest"  # V1; its largest contour is always an outer one, so outer_only changes nothing
    return "external" if outer_only else "tree"


def best_iou_per_level(maps_uint8: np.ndarray, boxes: Sequence[ArrayLike], multi_contour: bool = True,
                       num_threads: int | None = None, outer_only: bool = False) -> np.ndarray:
    """Best IoU (any mined box x any GT box) at every uint8 level.

    Runs the exact union-find sweeps of :mod:`._sweep`, all 256 levels at once: every ``RETR_TREE`` contour
    for V2, the first largest by ``cv2.contourArea`` for V1 (no OpenCV call; equal to OpenCV's choice,
    ties included).

    Args:
        maps_uint8: ``(B, H, W)`` uint8 quantised maps.
        boxes: ``B`` GT boxes ``(n_i, 4)``, ``n_i >= 1``.
        multi_contour: V2 (True) or V1 (False).
        num_threads: threads for the sweep (default ``torch.get_num_threads()``).
        outer_only: V2 over the object contours only (OpenCV ``RETR_EXTERNAL``: no hole contour, nothing
            nested in a hole), so an inverted map cannot score through the hole the object leaves. V1
            ignores it (its largest contour is always an outer one).

    Returns:
        ``(B, 256)`` float64; ``[b, L]`` is the best IoU when image ``b`` is binarised at level ``L``.

    """
    u = np.ascontiguousarray(maps_uint8, dtype=np.uint8)
    gt, offsets = check_boxes(boxes, u.shape[0])
    return best_iou_per_level_sweep(u, gt, offsets, _sweep_mode(multi_contour, outer_only), None, num_threads)


def best_iou_per_threshold(maps_uint8: np.ndarray, boxes: Sequence[ArrayLike], thresholds: np.ndarray,
                           multi_contour: bool = True, num_threads: int | None = None,
                           outer_only: bool = False) -> np.ndarray:
    """Best IoU per image and threshold, wsolevaluation's ``sliced_multiple_iou`` for a batch.

    Only the levels the grid reaches (``int(t * max(U))``) are scored.

    Args:
        maps_uint8: ``(B, H, W)`` uint8 quantised maps.
        boxes: ``B`` GT boxes ``(n_i, 4)``.
        thresholds: ``(T,)`` float64 grid (:func:`cam_thresholds`).
        multi_contour: V2 (True) or V1 (False).
        num_threads: threads for the sweep (default ``torch.get_num_threads()``).
        outer_only: object contours only (see :func:`best_iou_per_level`).

    Returns:
        ``(B, T)`` float64.

    """
    u = np.ascontiguousarray(maps_uint8, dtype=np.uint8)
    gt, offsets = check_boxes(boxes, u.shape[0])
    top = u.reshape(u.shape[0], -1).max(axis=1).astype(np.float64) if u.size else np.zeros(u.shape[0])
    levels = (np.asarray(thresholds, np.float64)[None, :] * top[:, None]).astype(np.int64)
    want = np.zeros((u.shape[0], NUM_LEVELS), np.bool_)
    np.put_along_axis(want, levels, True, axis=1)
    per_level = best_iou_per_level_sweep(u, gt, offsets, _sweep_mode(multi_contour, outer_only), want,
                                         num_threads)
    return np.take_along_axis(per_level, levels, axis=1)


def scale_boxes_wsolevaluation(boxes: ArrayLike, orig_wh: Sequence[float],
                               new_wh: Sequence[float]) -> np.ndarray:
    """Rescale boxes like wsolevaluation's ``resize_bbox``: ``int(x * new_w / w)``, ``int(y * new_h / h)``.

    Args:
        boxes: ``(n, 4)`` or ``(4,)`` boxes ``x0, y0, x1, y1`` in the original image.
        orig_wh: original ``(width, height)``.
        new_wh: target ``(width, height)`` (224, 224 for the protocol).

    Returns:
        int64 boxes of the input's shape.

    """
    b = to_numpy(boxes).astype(np.float64)
    w, h = map(float, orig_wh)
    nw, nh = map(float, new_wh)
    scale_num = np.array([nw, nh, nw, nh])
    scale_den = np.array([w, h, w, h])
    return (b * scale_num / scale_den).astype(np.int64)


def upsample_and_normalize(maps: Tensor, size: Sequence[int], mode: str = "bicubic") -> Tensor:
    """Upsample ``(B, h, w)`` maps to ``size`` ``(H, W)`` in float64 with ``mode``, then min-max each to [0, 1].

    wsolevaluation's order (resize, then normalise); ``mode`` is ``"bicubic"`` (the protocol) or ``"bilinear"``.
    Returns ``(B, H, W)`` float64.
    """
    maps = maps.detach().to(torch.float64)
    maps = F.interpolate(maps[:, None], size=tuple(size), mode=mode, align_corners=False)[:, 0]
    return normalize_maps(maps)
