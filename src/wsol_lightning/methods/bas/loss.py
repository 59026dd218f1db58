"""BAS's loss terms (Wu et al., CVPR 2022; Zhai et al., IJCV 2024) as pure functions.

Notation: ``S`` the logits (GAP of the class activation maps ``F``), ``M`` the foreground prediction
maps (sigmoid), ``y`` the GT class, ``S^b`` the logits of the background-masked feature run through
the rest of the network with stop-gradient weights.

Total (each term logged by name): ``L = L_cls + alpha * L_frg + L_bas + beta * L_ac``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor


def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """``L_cls``: softmax cross-entropy on the GAP logits.

    Args:
        logits: ``(B, C)`` class scores ``S``.
        labels: ``(B,)`` int64 GT classes.

    Returns:
        Scalar mean loss.

    """
    return F.cross_entropy(logits, labels)


def multilabel_classification_loss(logits: Tensor, multi_hot: Tensor) -> Tensor:
    """``L_mcls`` of the IJCV paper (WSSS): each positive class against all negatives.

    For image ``i`` and positive class ``p`` the term is the softmax cross-entropy of target 0 over
    the vector ``[S_ip, S_in for n negative]``, i.e. ``softplus(logsumexp_n S_in - S_ip)`` (0 when the
    image has no negative class). Terms are summed over the positives of an image and averaged over
    the batch (the official weighting: mean over pairs times #pairs / batch).

    Args:
        logits: ``(B, C)`` class scores.
        multi_hot: ``(B, C)`` 0/1 targets.

    Returns:
        Scalar loss.

    """
    positive = multi_hot > 0.5
    negatives = logits.masked_fill(positive, float("-inf"))
    neg_lse = torch.logsumexp(negatives, dim=1, keepdim=True)  # (B, 1), -inf if no negative
    per_pair = F.softplus(neg_lse - logits)  # (B, C): CE of each class as the positive
    per_pair = torch.where(positive, per_pair, torch.zeros_like(per_pair))
    return per_pair.sum(dim=1).mean()


def foreground_guidance_loss(cams: Tensor, fpm: Tensor, labels: Tensor) -> Tensor:
    """``L_frg``: cross-entropy of ``GAP(F * pool(M_y))``, the logits of the foreground-weighted maps.

    Args:
        cams: ``(B, C, h, w)`` class activation maps ``F``.
        fpm: ``(B, h_m, w_m)`` foreground prediction map of the GT class, ``M_y`` in [0, 1]; average
            pooled to ``(h, w)`` (the papers' 2x2 average pool from 28x28 to 14x14).
        labels: ``(B,)`` int64 GT classes.

    Returns:
        Scalar mean loss.

    """
    weights = F.adaptive_avg_pool2d(fpm[:, None], cams.shape[-2:])  # (B, 1, h, w)
    logits = (cams * weights).mean(dim=(2, 3))
    return F.cross_entropy(logits, labels)


def background_activation_loss(background_score: Tensor, foreground_score: Tensor,
                               clip_value: float = 0.0, eps: float = 1e-8) -> Tensor:
    """``L_bas`` (Eq. 3): the GT-class score left in the background, relative to the full image's.

    ``r = relu(S^b_y) / (relu(stopgrad(S_y)) + eps)``; where ``S^b_y >= S_y`` the ratio is replaced by
    ``clip_value`` (no gradient for those samples): 0 in the CVPR code, 1 in the IJCV code for
    ResNet/Inception/MobileNet. With the CVPR head (final ReLU) both scores are already >= 0 and the
    ReLUs change nothing.

    Args:
        background_score: ``(B,)`` ``S^b_y``, GT-class logit of the background branch.
        foreground_score: ``(B,)`` ``S_y``, GT-class logit of the image (detached here).
        clip_value: the constant used where ``S^b_y >= S_y``.
        eps: denominator guard.

    Returns:
        Scalar mean over the batch.

    """
    denominator = F.relu(foreground_score.detach()) + eps
    ratio = F.relu(background_score) / denominator
    clipped = background_score >= foreground_score.detach()
    ratio = torch.where(clipped, torch.full_like(ratio, clip_value), ratio)
    return ratio.mean()


def area_loss(fpm: Tensor) -> Tensor:
    """``L_ac`` (Eq. 4): mean activation of the GT-class foreground map.

    Args:
        fpm: ``(B, h, w)`` foreground prediction maps ``M_y`` in [0, 1].

    Returns:
        Scalar mean over pixels and batch.

    """
    return fpm.mean()


def gather_class(values: Tensor, classes: Tensor) -> Tensor:
    """Pick one class per sample: ``values[b, classes[b]]`` for ``(B, C, ...)`` values, no Python loop."""
    index = classes.view(-1, *([1] * (values.ndim - 1))).expand(-1, 1, *values.shape[2:])
    return values.gather(1, index).squeeze(1)
