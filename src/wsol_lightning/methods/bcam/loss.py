"""B-CAM's stagger classification loss (pure functions).

Each pooled feature is scored by its own classifier and by the other one, with complementary targets
(``e_y`` one-hot label, ``1`` all ones, ``0`` all zeros; MLSM = multi-label soft margin, i.e. the mean
over classes of the sigmoid binary cross-entropy, then over the batch):

========================  ==========================  =====================  ===========
name                      logits                      target                 loss
========================  ==========================  =====================  ===========
``loss_obj_cls``          ``W_o f_o``                 ``y``                  softmax CE
``loss_bg_on_obj``        ``W_b f~_o``                ``1 - e_y``            MLSM
``loss_bg_on_bg``         ``W_b f~_b``                ``1``                  MLSM
``loss_obj_on_bg``        ``W_o f_b``                 ``0``                  MLSM
========================  ==========================  =====================  ===========

The multi-label variant (the official VOC code) uses MLSM for the first term too, with the multi-hot
target ``y`` and ``1 - y`` for the second.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

#: Names of the four terms, in the order of the weights.
TERM_NAMES = ("loss_obj_cls", "loss_bg_on_obj", "loss_bg_on_bg", "loss_obj_on_bg")


def multilabel_soft_margin(logits: Tensor, targets: Tensor) -> Tensor:
    """Return ``-mean_b mean_c [t log sig(z) + (1 - t) log(1 - sig(z))]`` (MultiLabelSoftMarginLoss).

    Args:
        logits: ``(B, N)`` scores.
        targets: ``(B, N)`` float targets in [0, 1].

    Returns:
        Scalar loss.

    """
    return F.multilabel_soft_margin_loss(logits, targets.to(logits.dtype))


def stagger_targets(labels: Tensor, num_classes: int, multi_hot: Tensor | None = None) -> dict[str, Tensor]:
    """Return the targets of the four terms.

    Args:
        labels: ``(B,)`` int64 classes (ignored when ``multi_hot`` is given).
        num_classes: ``N``.
        multi_hot: ``(B, N)`` multi-hot targets of the multi-label variant, or ``None``.

    Returns:
        ``obj_cls``: ``(B,)`` labels (single-label) or ``(B, N)`` multi-hot; ``bg_on_obj``: ``(B, N)`` the
        complement ``1 - e_y`` (``1 - y``); ``bg_on_bg``: ``(B, N)`` ones; ``obj_on_bg``: ``(B, N)`` zeros.

    """
    if multi_hot is not None:
        positives = multi_hot.float()
        obj_cls: Tensor = positives
    else:
        positives = F.one_hot(labels, num_classes).float()
        obj_cls = labels
    return {
        "obj_cls": obj_cls,
        "bg_on_obj": 1.0 - positives,
        "bg_on_bg": torch.ones_like(positives),
        "obj_on_bg": torch.zeros_like(positives),
    }


def stagger_loss(
    logits_obj: Tensor,
    logits_bg_on_obj: Tensor,
    logits_bg_on_bg: Tensor,
    logits_obj_on_bg: Tensor,
    labels: Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    multi_hot: Tensor | None = None,
) -> dict[str, Tensor]:
    """Return the four weighted stagger terms and their sum.

    Args:
        logits_obj: ``(B, N)`` ``W_o f_o``.
        logits_bg_on_obj: ``(B, N)`` ``W_b f~_o``.
        logits_bg_on_bg: ``(B, N)`` ``W_b f~_b``.
        logits_obj_on_bg: ``(B, N)`` ``W_o f_b``.
        labels: ``(B,)`` int64 classes.
        weights: ``(l1, l2, l3, l4)`` of the four terms (official ResNet50: ``1, 1, 1, 1``; VGG16 and
            InceptionV3: ``1, 0.4, 0.4, 0.2``).
        multi_hot: ``(B, N)`` multi-hot targets: the multi-label variant (MLSM for every term).

    Returns:
        ``loss_obj_cls``, ``loss_bg_on_obj``, ``loss_bg_on_bg``, ``loss_obj_on_bg`` (each weighted) and
        ``loss`` (their sum); scalars.

    """
    if len(weights) != 4:
        raise ValueError(f"stagger_loss needs four weights, got {list(weights)}")
    targets = stagger_targets(labels, logits_obj.shape[1], multi_hot)
    if multi_hot is None:
        obj_cls = F.cross_entropy(logits_obj, targets["obj_cls"])
    else:
        obj_cls = multilabel_soft_margin(logits_obj, targets["obj_cls"])
    raw = (
        obj_cls,
        multilabel_soft_margin(logits_bg_on_obj, targets["bg_on_obj"]),
        multilabel_soft_margin(logits_bg_on_bg, targets["bg_on_bg"]),
        multilabel_soft_margin(logits_obj_on_bg, targets["obj_on_bg"]),
    )
    terms = {name: float(w) * value for name, w, value in zip(TERM_NAMES, weights, raw, strict=True)}
    terms["loss"] = sum(terms.values(), torch.zeros((), device=logits_obj.device, dtype=logits_obj.dtype))
    return terms
