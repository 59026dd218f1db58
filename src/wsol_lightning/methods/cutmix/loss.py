"""CutMix's loss: cross-entropy against both labels, weighted by the area each image contributes."""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812
from torch import Tensor


def mixed_cross_entropy(logits: Tensor, labels: Tensor, partner_labels: Tensor, lam: float,
                        label_smoothing: float = 0.0) -> Tensor:
    """``lam * CE(logits, labels) + (1 - lam) * CE(logits, partner_labels)`` (batch means).

    Args:
        logits: ``(B, C)`` class scores of the mixed images.
        labels: ``(B,)`` labels of the images the boxes were pasted into.
        partner_labels: ``(B,)`` labels of the images the boxes came from.
        lam: fraction of each mixed image that is its own (1 - pasted area / image area).
        label_smoothing: label smoothing of both terms.

    Returns:
        Scalar loss.

    """
    own = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    partner = F.cross_entropy(logits, partner_labels, label_smoothing=label_smoothing)
    return own * lam + partner * (1.0 - lam)
