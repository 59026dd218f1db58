"""CAM's loss: cross-entropy on the GAP logits."""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812
from torch import Tensor


def classification_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy.

    Args:
        logits: ``(B, C)`` class scores.
        labels: ``(B,)`` int64 class indices.
        label_smoothing: label smoothing factor.

    Returns:
        Scalar mean loss.

    """
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
