"""Baselines and warnings beside every val/test table: the numbers that say when a map is wrong.

Logged per split, on the same images and with the same metric settings as the method:

* ``baseline_centre_maxboxacc_v2`` / ``baseline_whole_maxboxacc_v2``: MaxBoxAccV2 of the centre-Gaussian
  map (:func:`~wsol_lightning.methods.baselines.centre_gaussian_maps`) and of the whole-image map;
* ``baseline_centre_pxap`` / ``baseline_whole_pxap`` and ``pxap_chance`` (the positive-pixel rate, what a
  map that ranks no pixel above another scores; equal to the whole-image PxAP) where masks exist;
* ``border_mass_ratio`` (:func:`~wsol_lightning.metrics.sanity.border_mass_ratio`), ``whole_image_span_rate``
  (percent of images boxed whole at the operating threshold), ``top1_chance_pvalue``;
* 0/1 flags ``warn_inverted_map``, ``warn_degenerate_threshold``, ``warn_chance_classifier``, whose
  reasons are printed once after the table (:func:`print_sanity_warnings`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn

from wsol_lightning.methods.baselines import centre_gaussian_maps
from wsol_lightning.metrics.reference import ReferenceMapBoxAcc, ReferenceMapPxAP, whole_image_map
from wsol_lightning.metrics.sanity import EvaluationSanity, chance_pvalue


def centre_gaussian_map(height: int, width: int) -> Tensor:
    """One ``(H, W)`` centre-Gaussian map (the reference of ``baseline_centre_*``)."""
    return centre_gaussian_maps(1, height, width)[0]


class SanityEvaluator(nn.Module):
    """The reference baselines and sanity counters, updated in the same step as the method's metrics.

    Args:
        iou_thresholds: IoU thresholds (percent), as the method's MaxBoxAcc.
        cam_curve_interval: threshold grid spacing, as the method's metrics.
        multi_contour: V2 (all contours) or V1, as the method's MaxBoxAcc.
        border_limit: ``border_mass_ratio`` above which the maps count as inverted (1 = uniform map).
        whole_image_limit: percent of images whose on pixels span the whole image at the operating threshold
            (``whole_image_span_rate``) above which that threshold is degenerate.
        chance_alpha: significance level of the one-sided binomial test of top-1 against ``1 / C``.

    """

    def __init__(self, iou_thresholds: tuple[int, ...] = (30, 50, 70), cam_curve_interval: float = 0.001,
                 multi_contour: bool = True, border_limit: float = 1.05, whole_image_limit: float = 50.0,
                 chance_alpha: float = 0.01) -> None:
        super().__init__()
        kw = {"iou_thresholds": iou_thresholds, "cam_curve_interval": cam_curve_interval,
              "multi_contour": multi_contour}
        self.centre_box = ReferenceMapBoxAcc(centre_gaussian_map, **kw)
        self.whole_box = ReferenceMapBoxAcc(whole_image_map, **kw)
        self.centre_pixel = ReferenceMapPxAP(centre_gaussian_map, cam_curve_interval=cam_curve_interval)
        self.stats = EvaluationSanity(cam_curve_interval=cam_curve_interval)
        self.border_limit, self.whole_image_limit, self.chance_alpha = border_limit, whole_image_limit, chance_alpha
        self.num_classes = 0  # learnt from the logits' width
        self.num_classified = 0  # set by compute()

    def update(self, maps: Tensor, logits: Tensor, top1_correct: Tensor, boxes: list[Tensor] | None,
               masks: Tensor | None) -> None:
        """Add a batch of maps ``(B, H, W)``, logits ``(B, C)``, top-1 flags ``(B,)`` and masks ``(B, H, W)``.

        ``boxes`` are the GT boxes of the images that have some: the images the method's MaxBoxAcc gets.
        """
        self.num_classes = int(logits.shape[1])
        height, width = maps.shape[-2:]
        if boxes:
            self.centre_box.update(boxes, height, width)
            self.whole_box.update(boxes, height, width)
        if masks is not None:
            self.centre_pixel.update(masks, height, width)
        self.stats.update(maps, top1_correct, masks)

    def image_part(self, maps: np.ndarray, flags: np.ndarray | None, masks: np.ndarray | None) -> dict[str, Any]:
        """The per-image work of :meth:`update` on some images, from checked inputs, touching no state.

        ``maps`` ``(b, H, W)`` (``check_maps``), ``flags`` ``(b,)`` (``check_flags``) and ``masks`` ``(b, H, W)``
        uint8 (``check_masks``) or ``None``; several threads may compute a batch's parts at once.
        """
        part: dict[str, Any] = {"stats": self.stats.image_part(maps, flags, masks)}
        if masks is not None:
            part["centre_pixel"] = self.centre_pixel.mask_histograms(masks)
        return part

    def add_parts(self, parts: list[dict[str, Any]], logits: Tensor, boxes: list[Tensor] | None,
                  size: tuple[int, int]) -> None:
        """Add a batch whose :meth:`image_part` were computed over consecutive image ranges (in image order).

        Equal to :meth:`update` on the whole batch, bit for bit: the reference boxes are scored here, the
        counts are integers and the float masses are summed per image in order (``EvaluationSanity.add_parts``).
        ``size`` is the maps' ``(H, W)``; ``boxes`` and ``logits`` are those :meth:`update` takes.
        """
        self.num_classes = int(logits.shape[1])
        if boxes:
            self.centre_box.update(boxes, *size)
            self.whole_box.update(boxes, *size)
        centre = [part["centre_pixel"] for part in parts if "centre_pixel" in part]
        if centre:
            self.centre_pixel.add_histograms(*(np.sum(hists, axis=0) for hists in zip(*centre)))
        self.stats.add_parts([part["stats"] for part in parts])

    def compute(self, boxes_seen: bool, masks_seen: bool) -> dict[str, Tensor]:
        """The baselines and statistics (MaxBoxAccV2/PxAP in percent); box and pixel ones only when seen.

        ``boxes_seen``/``masks_seen`` must agree across processes (the method's metrics were updated on
        some process): every process then runs the same synced computes.
        """
        out: dict[str, Tensor] = {}
        if boxes_seen:
            out["baseline_centre_maxboxacc_v2"] = self.centre_box.compute()["maxboxacc_v2"]
            out["baseline_whole_maxboxacc_v2"] = self.whole_box.compute()["maxboxacc_v2"]
        if masks_seen:
            out["baseline_centre_pxap"] = self.centre_pixel.compute()["pxap"]
        stats = self.stats.compute()
        if not math.isnan(float(stats["positive_rate"])):
            out["pxap_chance"] = stats["positive_rate"]
            out["baseline_whole_pxap"] = stats["positive_rate"]  # a constant ranking scores the positive rate
        out["border_mass_ratio"] = stats["border_mass_ratio"]
        self.num_classified = int(stats["num_classified"])  # summed over processes, for the chance flag
        pvalue = chance_pvalue(int(stats["top1_correct"]), self.num_classified, self.num_classes)
        out["top1_chance_pvalue"] = stats["border_mass_ratio"].new_tensor(pvalue)
        return out

    def warnings(self, results: dict[str, Tensor], threshold: float) -> tuple[dict[str, float], list[str]]:
        """Flags (0/1) and their printed reasons from a computed table at the operating ``threshold``.

        Args:
            results: the table (needs the keys of :meth:`compute`; uses ``pxap`` when present).
            threshold: the operating threshold used for GT-known/Top-1/Top-5 Loc.

        Returns:
            ``{"whole_image_span_rate", "warn_inverted_map", "warn_degenerate_threshold",
            "warn_chance_classifier"}`` and the list of messages (empty when all is well).

        """
        messages: list[str] = []
        value = {k: float(v) for k, v in results.items()}
        inverted = []
        if "pxap" in value and "pxap_chance" in value and value["pxap"] < value["pxap_chance"]:
            inverted.append(f"PxAP {value['pxap']:.1f} is below the positive-pixel rate "
                            f"{value['pxap_chance']:.1f} (PxAP at chance)")
        ratio = value.get("border_mass_ratio", math.nan)
        if ratio > self.border_limit:
            inverted.append(f"the maps put {ratio:.2f}x a uniform map's share of their mass on the image "
                            f"border (limit {self.border_limit})")
        if inverted:
            messages.append("inverted maps? " + "; ".join(inverted) + ". High on the background: MaxBoxAccV2 "
                            "can still score through the hole the object leaves; see maxboxacc_v2_outer.")
        grid = self.stats.thresholds
        whole = self.stats.whole_image_rate(threshold)  # every process joins the sync; NaN without images
        degenerate = []
        if threshold <= grid[0] + 1e-9 or threshold >= grid[-1] - 1e-9:
            degenerate.append(f"it is at the end of the grid [{grid[0]:g}, {grid[-1]:g}]")
        if whole > self.whole_image_limit:
            degenerate.append(f"{whole:.0f}% of the images have on pixels spanning the whole image at it")
        if degenerate:
            messages.append(f"degenerate operating threshold {threshold:g}: " + "; ".join(degenerate)
                            + ". Compare MaxBoxAccV2 with baseline_whole_maxboxacc_v2.")
        pvalue = value.get("top1_chance_pvalue", 1.0)
        chance = self.num_classes >= 2 and self.num_classified > 0 and pvalue > self.chance_alpha
        if chance:
            messages.append(f"chance-level classifier: top-1 {value.get('top1_cls', math.nan):.1f}% is not "
                            f"significantly above 1/{self.num_classes} = {100 / self.num_classes:.1f}% "
                            f"(one-sided binomial p = {pvalue:.3g} > {self.chance_alpha}).")
        flags = {"whole_image_span_rate": whole, "warn_inverted_map": float(bool(inverted)),
                 "warn_degenerate_threshold": float(bool(degenerate)), "warn_chance_classifier": float(chance)}
        return flags, messages

    def reset(self) -> None:
        """Reset every metric."""
        for metric in (self.centre_box, self.whole_box, self.centre_pixel, self.stats):
            metric.reset()


@rank_zero_only
def print_sanity_warnings(stage: str, messages: list[str]) -> None:
    """Print a split's warnings once, on rank zero, as a block after the metrics table."""
    if not messages:
        return
    lines = [f"WSOL sanity warnings ({stage}; flags {stage}/warn_*):"] + [f"  ! {m}" for m in messages]
    print("\n".join(lines), flush=True)


__all__ = ["SanityEvaluator", "centre_gaussian_map", "print_sanity_warnings"]
