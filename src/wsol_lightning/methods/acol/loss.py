"""ACoL's loss: cross-entropy of both classifiers on the image label."""

from __future__ import annotations

from torch import Tensor

from wsol_lightning.methods.cam.loss import classification_loss


def acol_losses(maps_a: Tensor, maps_b: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """The two ACoL terms and their sum (the reference weighs them equally).

    Args:
        maps_a: ``(B, C, h, w)`` class maps of classifier A (on the trunk features).
        maps_b: ``(B, C, h, w)`` class maps of classifier B (on the erased features).
        labels: ``(B,)`` int64 class indices.

    Returns:
        ``loss_cls`` (CE of ``GAP(maps_a)``), ``loss_erased`` (CE of ``GAP(maps_b)``) and ``loss``, scalars.

    """
    loss_cls = classification_loss(maps_a.mean(dim=(2, 3)), labels)
    loss_erased = classification_loss(maps_b.mean(dim=(2, 3)), labels)
    return {"loss_cls": loss_cls, "loss_erased": loss_erased, "loss": loss_cls + loss_erased}
