"""ORNet's losses (Xie et al., ICCV 2021): cross-entropy, Gaussian-weighted entropy and area.

All functions are pure: tensors in, scalar tensor out, no state. The refinement phase minimises
``ce_weight * CE + area_weight * L_area + entropy_weight * L_WE`` (1, 0.02 and 1.5 in the released code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: The epsilon the released code adds inside the logarithms (float32 machine epsilon).
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)


def classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Softmax cross-entropy.

    Args:
        logits: ``(B, C)`` class scores.
        labels: ``(B,)`` int64 class indices.

    Returns:
        Scalar mean loss.

    """
    return F.cross_entropy(logits, labels)


def entropy_weight(maps: Tensor, mu: float = 0.5, sigma: float = 0.1, beta: float = 0.0) -> Tensor:
    """Gaussian weight ``w(p) = exp(-(p - mu)^2 / (2 sigma^2)) + beta``, elementwise.

    Args:
        maps: activations in [0, 1], any shape.
        mu: centre of the Gaussian (the most ambiguous activation).
        sigma: width of the Gaussian.
        beta: constant added to every weight.

    Returns:
        Weights, same shape as ``maps`` (not detached: the weight is differentiated too, as released).

    """
    return torch.exp(-((maps - mu) ** 2) / (2.0 * sigma**2)) + beta


def binary_entropy(maps: Tensor, eps: float = FLOAT32_EPS) -> Tensor:
    """Binary entropy in nats ``H(p) = -[p ln(p + eps) + (1 - p) ln(1 - p + eps)]``, elementwise.

    Args:
        maps: activations in [0, 1], any shape.
        eps: added inside the logarithms so that 0 and 1 give a finite value.

    Returns:
        Entropies, same shape as ``maps``.

    """
    return -(maps * torch.log(maps + eps) + (1.0 - maps) * torch.log(1.0 - maps + eps))


def weighted_entropy_loss(maps: Tensor, mu: float = 0.5, sigma: float = 0.1, beta: float = 0.0,
                          eps: float = FLOAT32_EPS) -> Tensor:
    """ORNet's weighted entropy ``L_WE = mean_{b,h,w} w(p) H(p)``.

    Only activations near ``mu`` are penalised (``w(0.2) ~ 0.011`` with the defaults), which pushes
    the map towards a bimodal 0/1 map without flattening its confident parts.

    Args:
        maps: ``(B, 1, h, w)`` or ``(B, h, w)`` sigmoid activations.
        mu: centre of the Gaussian weight.
        sigma: width of the Gaussian weight.
        beta: constant added to the weight (0 in the released code).
        eps: added inside the logarithms.

    Returns:
        Scalar loss.

    """
    return (entropy_weight(maps, mu, sigma, beta) * binary_entropy(maps, eps)).mean()


def area_loss(maps: Tensor) -> Tensor:
    """Compactness ``L_area = mean_{b,h,w} p``.

    Args:
        maps: ``(B, 1, h, w)`` or ``(B, h, w)`` sigmoid activations.

    Returns:
        Scalar loss.

    """
    return maps.mean()


def class_area_term(class_maps: Tensor, class_scores: Tensor, rank_start: int = 4,
                    rank_end: int = 25) -> Tensor:
    """Compute the released code's extra area term on the generator's class-wise maps.

    ``sum_{r = rank_start..rank_end} (1 / (B h w)) sum_b sum_{h,w} f^a[b, c_r(b)]``, with ``c_r(b)`` the
    class ranked ``r`` (1-based) by ``class_scores`` for sample ``b`` (the evaluator's prediction). It
    suppresses the channels of plausible-but-unlikely classes. ``f^a`` comes out of a LeakyReLU, so the
    term is unbounded below (a quirk of the released code, kept as an option). Ranks beyond the number
    of classes are ignored.

    Args:
        class_maps: ``(B, K, h, w)`` class-wise maps ``f^a``.
        class_scores: ``(B, K)`` scores ranking the classes (only their order is used; no gradient).
        rank_start: first rank summed (1-based, inclusive).
        rank_end: last rank summed (1-based, inclusive).

    Returns:
        Scalar term (0 when no rank is in range).

    """
    num_classes = class_maps.shape[1]
    last = min(rank_end, num_classes)
    if rank_start < 1 or last < rank_start:
        return class_maps.new_zeros(())
    order = class_scores.detach().argsort(dim=1, descending=True)[:, rank_start - 1:last]  # (B, R)
    picked = torch.gather(class_maps, 1, order[:, :, None, None].expand(-1, -1, *class_maps.shape[2:]))
    return picked.sum(dim=1).mean()


def refinement_area_loss(maps: Tensor, class_maps: Tensor | None = None, class_scores: Tensor | None = None,
                         rank_start: int = 4, rank_end: int = 25) -> Tensor:
    """``area_loss(maps)``, plus :func:`class_area_term` when ``class_maps`` and ``class_scores`` are given.

    Args:
        maps: ``(B, 1, h, w)`` sigmoid activations.
        class_maps: ``(B, K, h, w)`` class-wise maps, or ``None`` for the paper-style loss only.
        class_scores: ``(B, K)`` class scores ranking the classes.
        rank_start: first rank of the class term (1-based).
        rank_end: last rank of the class term (1-based, inclusive).

    Returns:
        Scalar loss.

    """
    loss = area_loss(maps)
    if class_maps is not None and class_scores is not None:
        loss = loss + class_area_term(class_maps, class_scores, rank_start, rank_end)
    return loss
