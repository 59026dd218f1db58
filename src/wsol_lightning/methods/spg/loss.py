"""SPG's losses: classification plus three self-produced-guidance BCE terms (pure functions).

The reference (wsolevaluation ``wsol/method/spg.py``) upsamples every map bilinearly to a fixed square
(224, whatever the input size), turns a detached attention into a three-valued guidance mask (1 object,
0 background, :data:`IGNORE` undecided) and trains a one-channel map with BCE on the decided pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from wsol_lightning.methods.cam.loss import classification_loss
from wsol_lightning.methods.wsoleval import minmax_per_map

#: Value of the undecided pixels of a guidance mask (no loss there).
IGNORE = 255.0


def upsample(maps: Tensor, size: int) -> Tensor:
    """Bilinear (``align_corners=False``) resize of ``(B, C, h, w)`` maps to ``(B, C, size, size)``."""
    return F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=False)


def class_attention(maps: Tensor, labels: Tensor, size: int) -> Tensor:
    """Detached, upsampled, min-max normalised class map of ``labels``: ``(B, size, size)``.

    Args:
        maps: ``(B, C, h, w)`` class maps (SPG-A4's output).
        labels: ``(B,)`` classes.
        size: side of the upsampled map.

    """
    rows = torch.arange(labels.shape[0], device=labels.device)
    selected = maps.detach()[rows, labels].unsqueeze(1)  # bilinear works per channel: pick first, then resize
    return minmax_per_map(upsample(selected, size)[:, 0])


def fused_attention(logits_b1: Tensor, logits_b2: Tensor, size: int) -> Tensor:
    """Mean of the sigmoids of the two detached, upsampled SPG-B maps ``(B, 1, h, w)``: ``(B, size, size)``."""
    b1 = torch.sigmoid(upsample(logits_b1.detach(), size))
    b2 = torch.sigmoid(upsample(logits_b2.detach(), size))
    return ((b1 + b2) / 2.0)[:, 0]


def guidance_mask(attention: Tensor, high: float, low: float, min_foreground: int = 30,
                  fallback_ratio: float = 0.7) -> Tensor:
    """Three-valued mask from an attention ``(B, H, W)``: 1 above ``high``, 0 below ``low``, else IGNORE.

    An image with fewer than ``min_foreground`` pixels above ``high`` takes as object the pixels above
    ``fallback_ratio x`` its maximum instead. Background wins where both rules hold (the reference sets it last).

    Returns:
        ``(B, H, W)`` float mask with values in {0, 1, IGNORE}.

    """
    foreground = attention > high
    few = foreground.flatten(1).sum(dim=1) < min_foreground
    if few.any():
        peak = attention.flatten(1).amax(dim=1)
        fallback = attention > (peak * fallback_ratio)[:, None, None]
        foreground = torch.where(few[:, None, None], fallback, foreground)
    mask = torch.full_like(attention, IGNORE)
    mask[foreground] = 1.0
    mask[attention < low] = 0.0
    return mask


def masked_bce(logits: Tensor, mask: Tensor) -> Tensor:
    """Mean BCE-with-logits of ``logits`` ``(B, H, W)`` against ``mask`` ``(B, H, W)`` on its decided pixels.

    No decided pixel gives 0 (the reference's mean over an empty set is NaN).
    """
    decided = mask < IGNORE
    if not decided.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[decided], mask[decided])


def spg_losses(outputs: dict[str, Tensor], labels: Tensor, thresholds: tuple[float, ...], size: int = 224,
               min_foreground: int = 30, fallback_ratio: float = 0.7) -> dict[str, Tensor]:
    """The four SPG terms and their sum (the reference weighs them equally).

    Args:
        outputs: ``logits`` ``(B, C)``, ``maps`` ``(B, C, h, w)``, ``logits_b1`` / ``logits_b2`` / ``logits_c``
            ``(B, 1, h_i, w_i)``.
        labels: ``(B,)`` int64 classes.
        thresholds: ``(1h, 1l, 2h, 2l, 3h, 3l)``: the reference's ``spg_threshold_*``.
        size: side every map is upsampled to (reference: 224).
        min_foreground: see :func:`guidance_mask`.
        fallback_ratio: see :func:`guidance_mask`.

    Returns:
        ``loss_cls`` (CE), ``loss_b2`` (SPG-B2 against the class attention), ``loss_b1`` (SPG-B1 against
        ``sigmoid(B2)``), ``loss_c`` (SPG-C against the fused B1/B2 attention) and ``loss``.

    """
    h1, l1, h2, l2, h3, l3 = thresholds
    b2_up = upsample(outputs["logits_b2"], size)[:, 0]
    masks = {
        "loss_b2": (b2_up, guidance_mask(class_attention(outputs["maps"], labels, size), h1, l1,
                                         min_foreground, fallback_ratio)),
        "loss_b1": (upsample(outputs["logits_b1"], size)[:, 0],
                    guidance_mask(torch.sigmoid(b2_up.detach()), h2, l2, min_foreground, fallback_ratio)),
        "loss_c": (upsample(outputs["logits_c"], size)[:, 0],
                   guidance_mask(fused_attention(outputs["logits_b1"], outputs["logits_b2"], size), h3, l3,
                                 min_foreground, fallback_ratio)),
    }
    losses = {"loss_cls": classification_loss(outputs["logits"], labels)}
    losses.update({name: masked_bce(logits, mask) for name, (logits, mask) in masks.items()})
    losses["loss"] = sum(losses.values())  # type: ignore[assignment]
    return losses
