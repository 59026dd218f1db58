"""The *legacy* box protocols printed by the BAS and ORNet papers (not wsolevaluation's MaxBoxAcc).

Named as such so published tables can be reproduced and compared, never mixed with MaxBoxAccV2. Each
paper's recipe reproduces that paper's own eval code, by name (``legacy=``):

========== ================================================ ========================= =========== ==========
name       box at the fixed threshold (``map > t``)           nothing on                IoU         success
========== ================================================ ========================= =========== ==========
bas_cvpr   largest 8-connected component (skimage           ``(0, 0, W, H)``          ``+1``      ``> 0.5``
(= bas)    ``regionprops`` bbox: max EXCLUSIVE, 1 px larger
           than the blob) -- BAS/*/BAS_inference.py
bas_ijcv   the same box -- BAS-Extension/WSOL/evaluator.py   ``(0, 0, W, H)``          ``+1``      ``>= 0.5``
ornet      every pixel above ``t`` (no component), indices  ``(0, 0, 4W, 4H)``        none,       ``> 0.5``
           x 4 (56x56 map -> 224) -- ORNet utils/func_utils  (the full 224 image)     float32
           ``find_bbox``, train_2nd_step.py
tight      largest 8-connected component, tight inclusive   ``(0, 0, W - 1, H - 1)``  ``+1``      ``> 0.5``
           box (this library's earlier legacy rule)
========== ================================================ ========================= =========== ==========

Largest component: pixel count, ties to the component met first in raster order (skimage numbering + the
official ``count_max``'s stable sort). The threshold is compared in the map's own dtype (float32 maps against a
float32 threshold, as numpy does in the official code). GT boxes live in the resize-256 / centre-crop-224 frame,
mapped there as each paper's loader does (:func:`~wsol_lightning.metrics.legacy_frames.legacy_crop_boxes`).
Per-class averaging (BAS CVPR CUB script) and ten-crop classification are left to the caller.
``tests/parity/test_legacy_parity.py`` checks each rule against the official code's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from wsol_lightning.metrics._checks import ArrayLike, as_tensor, check_flags, check_maps, to_numpy
from wsol_lightning.metrics.functional import iou_matrix
from wsol_lightning.metrics.legacy_frames import legacy_crop_boxes

__all__ = ["LegacyBoxAccuracy", "legacy_bas_box", "legacy_box", "legacy_crop_boxes", "legacy_hits", "legacy_iou",
           "legacy_largest_component_box", "legacy_ornet_box", "legacy_protocol"]

LegacyProtocol = Literal["bas", "bas_cvpr", "bas_ijcv", "ornet", "tight"]
#: name -> (box rule, success is strict ``>``, map-to-image scale)
_PROTOCOLS: dict[str, tuple[str, bool, int]] = {
    "bas_cvpr": ("bas", True, 1),
    "bas_ijcv": ("bas", False, 1),
    "ornet": ("ornet", True, 4),
    "tight": ("tight", True, 1),
}
_ALIASES = {"bas": "bas_cvpr"}


def legacy_protocol(name: str) -> str:
    """Return the canonical protocol name (``"bas"`` is ``"bas_cvpr"``); raise naming the choices."""
    name = _ALIASES.get(name, name)
    if name not in _PROTOCOLS:
        raise ValueError(f"legacy must be one of {sorted([*_PROTOCOLS, *_ALIASES])}; got {name!r}.")
    return name


def _largest_component(binary: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` of the largest 8-connected component of a uint8 mask (first in raster order on ties)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    tied = np.flatnonzero(areas == areas.max()) + 1
    if tied.size > 1:  # first in raster order, as skimage.measure.label numbers components
        first = [int(np.argmax((labels == k).ravel())) for k in tied]
        best = int(tied[int(np.argmin(first))])
    else:
        best = int(tied[0])
    left, top = int(stats[best, cv2.CC_STAT_LEFT]), int(stats[best, cv2.CC_STAT_TOP])
    return left, top, int(stats[best, cv2.CC_STAT_WIDTH]), int(stats[best, cv2.CC_STAT_HEIGHT])


def legacy_largest_component_box(scoremap: ArrayLike, threshold: float) -> np.ndarray:
    """Tight box of the largest 8-connected component of ``scoremap > threshold`` (the ``tight`` rule).

    Args:
        scoremap: ``(H, W)`` float map.
        threshold: fixed threshold (strict ``>``).

    Returns:
        ``(4,)`` int64 ``x0, y0, x1, y1`` inclusive; ``(0, 0, W - 1, H - 1)`` when nothing is on.

    """
    s = to_numpy(scoremap)
    height, width = s.shape
    found = _largest_component((s > threshold).astype(np.uint8))
    if found is None:
        return np.array([0, 0, width - 1, height - 1], np.int64)
    x, y, w, h = found
    return np.array([x, y, x + w - 1, y + h - 1], np.int64)


def legacy_bas_box(scoremap: ArrayLike, threshold: float) -> np.ndarray:
    """BAS's box: skimage ``regionprops`` bbox of the largest 8-connected component of ``scoremap > threshold``.

    Args:
        scoremap: ``(H, W)`` float map (the official code: min-max normalised, at the 224 crop).
        threshold: fixed threshold (strict ``>``, compared in the map's dtype).

    Returns:
        ``(4,)`` int64 ``x0, y0, x1, y1`` with ``x1, y1`` EXCLUSIVE (one past the last pixel, as regionprops);
        ``(0, 0, W, H)`` when nothing is on.

    """
    s = to_numpy(scoremap)
    height, width = s.shape
    found = _largest_component((s > threshold).astype(np.uint8))
    if found is None:
        return np.array([0, 0, width, height], np.int64)
    x, y, w, h = found
    return np.array([x, y, x + w, y + h], np.int64)


def legacy_ornet_box(scoremap: ArrayLike, threshold: float, scale: int = 4) -> np.ndarray:
    """ORNet's ``find_bbox``: min/max extent of EVERY pixel of ``scoremap > threshold``, indices times ``scale``.

    Args:
        scoremap: ``(H, W)`` map, the raw 56x56 sigmoid map in the official code (no normalisation).
        threshold: absolute threshold (strict ``>``).
        scale: map-to-image factor (4: 56 -> 224).

    Returns:
        ``(4,)`` int64 ``min_x, min_y, max_x, max_y`` times ``scale`` (at most ``scale * (W - 1)``);
        ``(0, 0, scale * W, scale * H)`` (the whole 224 image) when nothing is on.

    """
    s = to_numpy(scoremap)
    height, width = s.shape
    ys, xs = np.nonzero(s > threshold)
    if ys.size == 0:
        return np.array([0, 0, scale * width, scale * height], np.int64)
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.int64) * scale


def legacy_box(scoremap: ArrayLike, threshold: float, legacy: LegacyProtocol = "tight") -> np.ndarray:
    """The box protocol ``legacy`` mines from one ``(H, W)`` map at ``threshold`` (see the module table)."""
    rule, _, scale = _PROTOCOLS[legacy_protocol(legacy)]
    if rule == "bas":
        return legacy_bas_box(scoremap, threshold)
    if rule == "ornet":
        return legacy_ornet_box(scoremap, threshold, scale)
    return legacy_largest_component_box(scoremap, threshold)


def legacy_iou(pred: ArrayLike, gt: ArrayLike, legacy: LegacyProtocol = "tight") -> np.ndarray:
    """IoU ``(n_a, n_b)`` of ``(n_a, 4)`` against ``(n_b, 4)`` boxes (float coordinates allowed) under ``legacy``.

    ``+1`` pixel convention in float64 (BAS, tight); ORNet: ``(x1 - x0) * (y1 - y0)`` areas in float32, as its
    torch code, with ``0 / 0`` left NaN (:func:`legacy_hits` counts it as the official code does).
    """
    if _PROTOCOLS[legacy_protocol(legacy)][0] != "ornet":
        a = to_numpy(pred).astype(np.float64).reshape(-1, 4)
        b = to_numpy(gt).astype(np.float64).reshape(-1, 4)
        return iou_matrix(a, b)
    a = to_numpy(pred).astype(np.float32).reshape(-1, 4)
    b = to_numpy(gt).astype(np.float32).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    side = np.maximum(hi - lo, np.float32(0))
    inter = side[..., 0] * side[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a[:, None] + area_b[None, :] - inter)


def legacy_hits(iou: ArrayLike, legacy: LegacyProtocol = "tight", iou_threshold: float = 0.5,
                strict: bool | None = None) -> np.ndarray:
    """Success per image from IoUs ``(B, n_gt)``: some GT box has IoU above ``iou_threshold``.

    ``strict=None`` uses the protocol's rule (``>`` for bas_cvpr, ornet and tight; ``>=`` for bas_ijcv). ORNet's
    ``torch.where`` pair turns a NaN IoU (both boxes of zero area) into a hit; that is kept.
    """
    _, protocol_strict, _ = _PROTOCOLS[legacy_protocol(legacy)]
    strict = protocol_strict if strict is None else strict
    values = np.asarray(iou, dtype=np.float64)
    hit = values > iou_threshold if strict else values >= iou_threshold
    if legacy_protocol(legacy) == "ornet":
        hit |= np.isnan(values)
    return hit.any(axis=-1)


class LegacyBoxAccuracy(Metric):
    """GT-known / Top-1 / Top-5 Loc of a legacy protocol at one fixed threshold (see the module table).

    Args:
        threshold: fixed CAM threshold (e.g. BAS CUB 0.15 / ILSVRC 0.5; ORNet one of 0.05 ... 0.95).
        iou_threshold: IoU threshold (fraction), 0.5.
        strict: ``None`` (the protocol's rule), ``True`` for ``IoU > iou_threshold``, ``False`` for ``>=``.
        legacy: ``"bas"`` / ``"bas_cvpr"``, ``"bas_ijcv"``, ``"ornet"`` or ``"tight"`` (the default, this
            library's earlier rule).
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, threshold: float, iou_threshold: float = 0.5, strict: bool | None = None,
                 legacy: LegacyProtocol = "tight", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.legacy = legacy_protocol(legacy)
        self.threshold = float(threshold)
        self.iou_threshold = float(iou_threshold)
        self.strict = _PROTOCOLS[self.legacy][1] if strict is None else bool(strict)
        names = ("gt_known_hits", "top1_hits", "top5_hits", "num_images", "num_top1_flags", "num_top5_flags")
        for name in names:
            self.add_state(name, default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, cams: ArrayLike, boxes: Sequence[ArrayLike], top1_correct: ArrayLike | None = None,
               top5_correct: ArrayLike | None = None) -> None:
        """Accumulate ``(B, H, W)`` maps in [0, 1] with ``B`` GT box sets ``(n_i, 4)``.

        GT boxes are in the maps' frame (ORNet: the 224 image, the maps being 56x56).
        """
        maps = check_maps(cams)
        batch = maps.shape[0]
        if len(boxes) != batch:
            raise ValueError(f"boxes must hold one (n_i, 4) tensor per image: {len(boxes)} for {batch} maps.")
        for i, b in enumerate(boxes):
            shape = tuple(to_numpy(b).shape)
            if len(shape) != 2 or shape[1] != 4 or shape[0] == 0:
                raise ValueError(f"boxes[{i}] must have shape (n, 4) with n >= 1; got {shape}.")
        flags1 = check_flags(top1_correct, batch, "top1_correct")
        flags5 = check_flags(top5_correct, batch, "top5_correct")
        hits = np.zeros(batch, bool)
        for i in range(batch):
            iou = legacy_iou(legacy_box(maps[i], self.threshold, self.legacy), boxes[i], self.legacy)
            hits[i] = legacy_hits(iou[0], self.legacy, self.iou_threshold, self.strict)
        self.gt_known_hits += int(hits.sum())
        self.num_images += batch
        if flags1 is not None:
            self.top1_hits += int((hits & flags1).sum())
            self.num_top1_flags += batch
        if flags5 is not None:
            self.top5_hits += int((hits & flags5).sum())
            self.num_top5_flags += batch

    def compute(self) -> dict[str, Tensor]:
        """``gt_known_loc``, ``top1_loc``, ``top5_loc`` in percent (NaN when undefined)."""
        n = float(self.num_images)

        def pct(hits: Tensor, seen: Tensor | None) -> Tensor:
            ok = n > 0 and (seen is None or int(seen) > 0)
            return as_tensor(float(hits) * 100.0 / n if ok else np.nan, like=self.num_images)

        return {"gt_known_loc": pct(self.gt_known_hits, None),
                "top1_loc": pct(self.top1_hits, self.num_top1_flags),
                "top5_loc": pct(self.top5_hits, self.num_top5_flags)}
