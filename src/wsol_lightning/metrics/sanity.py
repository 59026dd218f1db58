"""Statistics that say when a localisation result is wrong, as pure functions and one summed Metric.

* :func:`border_mass` / :func:`border_mass_ratio`: how much of the maps' mass lies on the image border,
  relative to a uniform map (an inverted map, high on the background, puts its mass there);
* :func:`whole_image_levels`: up to which uint8 level the on pixels' bounding box is (nearly) the whole
  image (a degenerate operating threshold boxes the whole image);
* :func:`chance_pvalue`: whether a top-1 accuracy is significantly above ``1 / num_classes``.

:class:`EvaluationSanity` accumulates them with summed (DDP-safe) counters, next to the method's metrics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from wsol_lightning.metrics import functional as F
from wsol_lightning.metrics._checks import ArrayLike, check_flags, check_maps, check_masks
from wsol_lightning.metrics._sweep import NUM_LEVELS


def border_band(height: int, width: int, band: float = 0.125) -> tuple[int, int]:
    """Rows and columns of the border band: ``(ceil(band * H), ceil(band * W))``, at least 1 each."""
    if not 0 < band < 0.5:
        raise ValueError(f"border band must be in (0, 0.5); got {band}.")
    return max(1, math.ceil(band * height)), max(1, math.ceil(band * width))


def border_mass(maps: ArrayLike, band: float = 0.125) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Map mass on the border band of each image, and in total.

    The border band is every pixel within ``bh = ceil(band * H)`` rows of the top or bottom edge or
    ``bw = ceil(band * W)`` columns of the left or right edge (:func:`border_band`); with the default
    ``band = 0.125`` it is ``1 - 0.75**2 = 43.75%`` of the image. The mass is the sum of map values.

    Args:
        maps: ``(B, H, W)`` float maps in [0, 1].
        band: width of the band as a fraction of each side, in (0, 0.5).

    Returns:
        ``border`` ``(B,)`` and ``total`` ``(B,)`` float64 masses, the number of border pixels and of
        pixels of one image.

    """
    arr = np.ascontiguousarray(check_maps(maps), dtype=np.float64)  # no copy of C-contiguous float64 maps
    _, height, width = arr.shape
    bh, bw = border_band(height, width, band)
    inner = arr[:, bh:height - bh, bw:width - bw]
    total = arr.sum(axis=(1, 2))
    inner_pixels = max(height - 2 * bh, 0) * max(width - 2 * bw, 0)
    return total - inner.sum(axis=(1, 2)), total, height * width - inner_pixels, height * width


def border_mass_ratio(border: float, total: float, border_pixels: float, pixels: float) -> float:
    """Share of the mass on the border band divided by the band's share of the pixels.

    ``1`` for a uniform (or whole-image) map, below 1 for maps that peak inside the image (the centre
    Gaussian: ~0.3), above 1 for maps concentrated on the border (an inverted map of a centred object).
    Pooled over a split by summing each argument over images. NaN when the total mass is 0.

    Args:
        border: mass on the border band.
        total: total mass.
        border_pixels: pixels in the band.
        pixels: pixels in all.

    Returns:
        The ratio (float).

    """
    if total <= 0 or border_pixels <= 0:
        return math.nan
    return (border / total) / (border_pixels / pixels)


def whole_image_levels(maps_uint8: np.ndarray, min_coverage: float = 0.9) -> np.ndarray:
    """Per image, the highest uint8 level whose on pixels' bounding box covers ``min_coverage`` of the image.

    At level ``L`` the on pixels are ``U > L``; their bounding box is the union of every box mined at
    that level. It only shrinks as ``L`` rises, so the boxes are "whole-image" (the bounding box covers at
    least ``min_coverage`` of ``H * W``) exactly at the levels ``<= `` the returned value.

    Args:
        maps_uint8: ``(B, H, W)`` uint8 quantised maps.
        min_coverage: share of the image area that counts as the whole image.

    Returns:
        ``(B,)`` int64 levels in ``[-1, 254]`` (``-1``: never whole-image).

    """
    u = np.asarray(maps_uint8)
    levels = np.arange(NUM_LEVELS)[None, :, None]
    height, width = u.shape[1], u.shape[2]
    spans = []
    for profile, n in ((u.max(axis=1), width), (u.max(axis=2), height)):  # column and row maxima
        on = profile[:, None, :] > levels  # (B, 256, n)
        first = np.argmax(on, axis=2)
        last = n - 1 - np.argmax(on[:, :, ::-1], axis=2)
        spans.append(np.where(on.any(axis=2), last - first + 1, 0))
    whole = spans[0] * spans[1] >= min_coverage * height * width  # (B, 256), True up to some level
    return np.where(whole.any(axis=1), whole.sum(axis=1) - 1, -1).astype(np.int64)


def chance_pvalue(correct: int, total: int, num_classes: int) -> float:
    """One-sided exact binomial p-value of ``correct`` top-1 hits out of ``total`` at chance ``1 / num_classes``.

    ``P(X >= correct)`` for ``X ~ Binomial(total, 1 / num_classes)``: small when the classifier is
    significantly better than guessing. 1.0 when there is nothing to test (no image, one class).
    """
    if total <= 0 or num_classes < 2 or correct <= 0:
        return 1.0
    p = 1.0 / num_classes
    k = torch.arange(int(correct), int(total) + 1, dtype=torch.float64)
    n = torch.tensor(float(total), dtype=torch.float64)
    log_terms = (torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
                 + k * math.log(p) + (n - k) * math.log1p(-p))
    return float(torch.logsumexp(log_terms, dim=0).exp().clamp(max=1.0))


class EvaluationSanity(Metric):
    """Summed counters behind the sanity warnings of a val/test table (DDP-safe, nothing stored per image).

    Args:
        cam_curve_interval: spacing of the threshold grid (as the box metric's).
        border_band: width of the border band (:func:`border_mass`).
        min_coverage: share of the image a bounding box must cover to count as whole-image.
        kwargs: forwarded to :class:`torchmetrics.Metric`.

    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, cam_curve_interval: float = 0.001, border_band: float = 0.125, min_coverage: float = 0.9,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.thresholds = F.cam_thresholds(cam_curve_interval)
        self.cam_curve_interval = float(cam_curve_interval)
        self.border_band, self.min_coverage = float(border_band), float(min_coverage)
        for name in ("border_mass", "total_mass"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("border_pixels", "pixels", "num_images", "top1_correct", "num_classified", "mask_pos",
                     "mask_neg"):
            self.add_state(name, default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("whole_image_hits", default=torch.zeros(len(self.thresholds), dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, maps: ArrayLike, top1_correct: ArrayLike | None = None, masks: ArrayLike | None = None) -> None:
        """Add ``(B, H, W)`` maps in [0, 1], optional ``(B,)`` top-1 flags and ``(B, H, W)`` masks."""
        arr = check_maps(maps)
        flags = check_flags(top1_correct, arr.shape[0], "top1_correct")
        gt = None if masks is None else check_masks(masks, arr)
        self._add([self.image_part(arr, flags, gt)])

    def image_part(self, maps: np.ndarray, flags: np.ndarray | None, masks: np.ndarray | None) -> dict[str, Any]:
        """The statistics of some images, from checked inputs, without touching the state.

        Callers may compute the parts of a batch on several threads (``methods/evaluation.py``) and add them
        with :meth:`add_parts` in image order.

        Args:
            maps: ``(b, H, W)`` float maps checked by ``check_maps``.
            flags: ``(b,)`` bool top-1 flags (``check_flags``) or ``None``.
            masks: ``(b, H, W)`` uint8 masks (``check_masks``) or ``None``.

        Returns:
            Per-image ``border`` and ``total`` masses ``(b,)`` float64 (summed only in :meth:`add_parts`, so
            the float sum is the one of the whole batch), and integer counts.

        """
        batch = maps.shape[0]
        border, total, border_px, px = border_mass(maps, self.border_band)
        u = F.quantize_maps(maps)
        top = u.reshape(batch, -1).max(axis=1).astype(np.float64) if u.size else np.zeros(batch)
        levels = (self.thresholds[None, :] * top[:, None]).astype(np.int64)  # (B, T), as MaxBoxAcc
        whole = levels <= whole_image_levels(u, self.min_coverage)[:, None]
        return {"border": border, "total": total, "border_pixels": border_px * batch, "pixels": px * batch,
                "whole_image_hits": whole.sum(axis=0), "num_images": batch,
                "top1_correct": None if flags is None else int(flags.sum()),
                "mask_pos": 0 if masks is None else int((masks == 1).sum()),
                "mask_neg": 0 if masks is None else int((masks == 0).sum())}

    def add_parts(self, parts: list[dict[str, Any]]) -> None:
        """One update from the :meth:`image_part` of consecutive image ranges of a batch, in image order.

        The float masses are concatenated per image and summed once, as :meth:`update` on the whole batch
        sums them, so the result is bit-identical to it; the counts are integers. Recorded as an update, as
        torchmetrics' ``update`` wrapper does.
        """
        self._computed = None
        self._update_count += 1
        self._add(parts)

    def _add(self, parts: list[dict[str, Any]]) -> None:
        self.border_mass += float(np.concatenate([p["border"] for p in parts]).sum())
        self.total_mass += float(np.concatenate([p["total"] for p in parts]).sum())
        hits = np.sum([p["whole_image_hits"] for p in parts], axis=0)
        self.whole_image_hits += torch.from_numpy(hits).to(self.whole_image_hits.device)
        for name in ("border_pixels", "pixels", "num_images", "mask_pos", "mask_neg"):
            getattr(self, name).add_(sum(int(p[name]) for p in parts))
        for part in parts:
            if part["top1_correct"] is not None:
                self.top1_correct += part["top1_correct"]
                self.num_classified += part["num_images"]

    def compute(self) -> dict[str, Tensor]:
        """Return ``border_mass_ratio``, ``positive_rate`` (percent; NaN without masks) and the top-1 counts."""
        pixels = int(self.mask_pos + self.mask_neg)
        rate = 100.0 * int(self.mask_pos) / pixels if pixels else math.nan
        ratio = border_mass_ratio(float(self.border_mass), float(self.total_mass), float(self.border_pixels),
                                  float(self.pixels))
        return {"border_mass_ratio": torch.tensor(ratio, dtype=torch.float64),
                "positive_rate": torch.tensor(rate, dtype=torch.float64),
                "top1_correct": self.top1_correct.clone(), "num_classified": self.num_classified.clone()}

    def whole_image_rate(self, threshold: float) -> float:
        """Percent of images whose on pixels' bounding box is whole-image at grid ``threshold`` (synced)."""
        tol = self.cam_curve_interval * 1e-4
        index = max(int(np.searchsorted(self.thresholds, float(threshold) + tol, side="right")) - 1, 0)
        with self.sync_context(dist_sync_fn=self.dist_sync_fn, should_sync=self._to_sync, should_unsync=True):
            hits, n = int(self.whole_image_hits[index]), int(self.num_images)
        return 100.0 * hits / n if n else math.nan
