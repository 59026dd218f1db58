"""ORNet's attentive erasing, vectorised over the batch (no Python loop, no host round trip).

For each image, with probability ``erase_prob``: the pixels above ``tau = max p - alpha (max p - min p)``
form the region ``S``; a rectangle ``R`` centred on the peak, with random half-sizes drawn between
``min_half`` and half the extent of ``S``, intersects ``S`` into the erase set ``E``. Every map is then
rescaled to ``a = scale * p + shift`` (0.6p + 0.2, i.e. [0.2, 0.8]) and each pixel of ``E`` is dropped
with probability equal to its own ``a`` (multiplied by a Bernoulli(1 - a) draw). The 0/1 noise is a
constant, so the gradient through the kept pixels is the gradient of ``a``.

Where the released code skips an image silently (its extent is too small for a half-size of at least
``min_half``), this version skips it too, but reports it in :attr:`ErasingResult.valid`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class ErasingResult(NamedTuple):
    """What :func:`attentive_erase` returns (all ``B``-leading tensors, on the maps' device).

    Attributes:
        maps: the rescaled, erased maps, same shape as the input.
        region: ``(B, h, w)`` bool erase set ``E = S & R`` (empty for images not erased).
        dropped: ``(B, h, w)`` bool pixels of ``E`` actually dropped (set to 0).
        above: ``(B, h, w)`` bool ``S``, the pixels above the threshold.
        alpha: ``(B,)`` erasing factors.
        threshold: ``(B,)`` thresholds ``tau``.
        erased: ``(B,)`` bool, images chosen for erasing whose region was large enough.
        valid: ``(B,)`` bool, images whose region was large enough to sample a rectangle.

    """

    maps: Tensor
    region: Tensor
    dropped: Tensor
    above: Tensor
    alpha: Tensor
    threshold: Tensor
    erased: Tensor
    valid: Tensor


def _extent(mask: Tensor, dim: int) -> Tensor:
    """Count the rows (``dim=2``) or columns (``dim=1``) spanned by the True pixels of ``(B, h, w)``."""
    hit = mask.any(dim=dim)  # (B, n)
    index = torch.arange(hit.shape[1], device=mask.device)
    first = torch.where(hit, index, hit.shape[1]).amin(dim=1)
    last = torch.where(hit, index, -1).amax(dim=1)
    return (last - first + 1).clamp(min=0)


def _half_sizes(extent: Tensor, min_half: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Draw ``U{min_half, ..., extent // 2 - 1}`` per image; also return whether that range is non-empty."""
    high = extent // 2 - 1
    valid = high >= min_half
    span = (high - min_half + 1).clamp(min=1)
    u = torch.rand(extent.shape, generator=generator, device=extent.device)
    return min_half + (u * span).long().clamp(max=span - 1), valid


def attentive_erase(
    maps: Tensor,
    erase_prob: float = 0.5,
    alpha_max: float = 0.5,
    min_half: int = 4,
    scale: float = 0.6,
    shift: float = 0.2,
    per_sample_alpha: bool = False,
    generator: torch.Generator | None = None,
) -> ErasingResult:
    """Attentive erasing of activation maps (training only).

    Args:
        maps: ``(B, 1, h, w)`` or ``(B, h, w)`` activations in [0, 1].
        erase_prob: probability that an image is erased.
        alpha_max: ``alpha ~ U(0, alpha_max)``; larger alpha, larger region ``S``.
        min_half: smallest half-size (pixels of the map) of the erasing rectangle.
        scale: rescale factor of the maps (``a = scale * p + shift``).
        shift: rescale offset.
        per_sample_alpha: draw one alpha per image; ``False`` draws one per batch (released code).
        generator: random generator (on the maps' device) for reproducible draws; ``None`` uses the
            global generator.

    Returns:
        An :class:`ErasingResult`; ``result.maps`` is what multiplies the image.

    """
    squeeze = maps.ndim == 4
    p = maps[:, 0] if squeeze else maps
    if p.ndim != 3:
        raise ValueError(f"maps must be (B, 1, h, w) or (B, h, w), got {tuple(maps.shape)}")
    batch, height, width = p.shape
    device = p.device
    flat = p.detach().flatten(1)
    p_max, peak = flat.max(dim=1)
    p_min = flat.min(dim=1).values
    alpha = torch.rand(batch if per_sample_alpha else 1, generator=generator, device=device) * alpha_max
    alpha = alpha.expand(batch)
    threshold = p_max - alpha * (p_max - p_min)
    above = p.detach() > threshold[:, None, None]

    half_h, valid_h = _half_sizes(_extent(above, dim=2), min_half, generator)
    half_w, valid_w = _half_sizes(_extent(above, dim=1), min_half, generator)
    valid = valid_h & valid_w
    chosen = torch.rand(batch, generator=generator, device=device) < erase_prob
    erased = chosen & valid

    rows = torch.arange(height, device=device)[None, :, None]
    cols = torch.arange(width, device=device)[None, None, :]
    peak_y, peak_x = (peak // width)[:, None, None], (peak % width)[:, None, None]
    rectangle = ((rows - peak_y).abs() <= half_h[:, None, None]) & (
        (cols - peak_x).abs() <= half_w[:, None, None])
    region = above & rectangle & erased[:, None, None]

    rescaled = scale * p + shift
    keep = torch.rand(p.shape, generator=generator, device=device) < (1.0 - rescaled.detach())
    dropped = region & ~keep
    out = rescaled * (~dropped).to(rescaled.dtype)
    out = out[:, None] if squeeze else out
    return ErasingResult(out, region, dropped, above, alpha.clone(), threshold, erased, valid)
