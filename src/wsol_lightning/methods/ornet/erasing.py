"""ORNet's attentive erasing, vectorised over the batch (no Python loop, no host round trip).

For each image, with probability ``erase_prob``: the pixels above ``tau = max p - alpha (max p - min p)``
form the region ``S``; a rectangle ``R`` centred on the peak, with random half-sizes drawn between
``min_half`` and half the extent of ``S``, intersects ``S`` into the erase set ``E``. Every map is then
rescaled to ``a = scale * p + shift`` (0.6p + 0.2, i.e. [0.2, 0.8]) and each pixel of ``E`` is dropped
with probability equal to its own ``a`` (multiplied by a Bernoulli(1 - a) draw). The 0/1 noise is a
constant, so the gradient through the kept pixels is the gradient of ``a``.

The geometry is the released code's (``models/erasing.py``), pixel for pixel:

* the extent of ``S`` is ``max - min`` of its row (column) indices, and a half-size ``h`` is drawn from
  ``U{min_half, ..., extent // 2 - 1}``; an image whose range is empty is not erased;
* ``R`` holds the rows ``r`` with ``max(c - h, 0) < r < c + h`` (``c`` the peak's row; both ends
  exclusive, so row 0 is never erased), and the same for the columns;
* an image whose ``E`` is a single pixel is not erased (the released code's index squeeze fails on it
  and the exception is swallowed).

Where the released code skips an image silently, this version skips it too but reports it in
:attr:`ErasingResult.valid` / :attr:`ErasingResult.erased`. The random draws are uniforms in [0, 1)
(:class:`ErasingUniforms`): from ``generator`` by default, or passed in to replay a given draw.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class ErasingUniforms(NamedTuple):
    """The uniform [0, 1) draws of one erasing call (on the maps' device, any float dtype).

    Attributes:
        alpha: ``(B,)`` or ``(1,)``; the erasing factor is ``alpha * alpha_max`` (one per batch as released).
        coin: ``(B,)``; an image is chosen for erasing when ``coin < erase_prob``.
        half_h: ``(B,)``; the half-height is ``min_half + floor(half_h * (extent_h // 2 - min_half))``.
        half_w: ``(B,)``; the half-width, likewise.
        noise: ``(B, h, w)``; a pixel of ``E`` is kept when ``noise < 1 - a``.

    """

    alpha: Tensor
    coin: Tensor
    half_h: Tensor
    half_w: Tensor
    noise: Tensor


class ErasingResult(NamedTuple):
    """What :func:`attentive_erase` returns (all ``B``-leading tensors, on the maps' device).

    Attributes:
        maps: the rescaled, erased maps, same shape as the input.
        region: ``(B, h, w)`` bool erase set ``E = S & R`` (empty for images not erased).
        dropped: ``(B, h, w)`` bool pixels of ``E`` actually dropped (set to 0).
        above: ``(B, h, w)`` bool ``S``, the pixels above the threshold.
        alpha: ``(B,)`` erasing factors.
        threshold: ``(B,)`` thresholds ``tau``.
        erased: ``(B,)`` bool, images whose erase set ``E`` is in use (chosen, valid, more than one pixel).
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


def draw_uniforms(batch: int, height: int, width: int, per_sample_alpha: bool = False,
                  generator: torch.Generator | None = None, device: torch.device | None = None,
                  dtype: torch.dtype = torch.float32) -> ErasingUniforms:
    """Draw the uniforms of one erasing call from ``generator`` (``None``: the global generator).

    The order is fixed: alpha, coin, half_h, half_w, noise.
    """

    def rand(*shape: int) -> Tensor:
        return torch.rand(shape, generator=generator, device=device, dtype=dtype)

    alpha = rand(batch if per_sample_alpha else 1)
    return ErasingUniforms(alpha, rand(batch), rand(batch), rand(batch), rand(batch, height, width))


def _extent(mask: Tensor, dim: int) -> Tensor:
    """``max - min`` of the row (``dim=2``) or column (``dim=1``) indices of the True pixels of ``(B, h, w)``.

    0 for an empty mask (as for a single row: no rectangle fits either way).
    """
    hit = mask.any(dim=dim)  # (B, n)
    index = torch.arange(hit.shape[1], device=mask.device)
    first = torch.where(hit, index, hit.shape[1]).amin(dim=1)
    last = torch.where(hit, index, -1).amax(dim=1)
    return (last - first).clamp(min=0)


def _half_sizes(extent: Tensor, uniform: Tensor, min_half: int) -> tuple[Tensor, Tensor]:
    """``U{min_half, ..., extent // 2 - 1}`` from ``uniform``; also whether that range is non-empty."""
    span = extent // 2 - min_half
    valid = span > 0
    span = span.clamp(min=1)
    offset = (uniform.to(torch.float64) * span).floor().long().clamp(max=span - 1)
    return min_half + offset, valid


def _inside(index: Tensor, centre: Tensor, half: Tensor) -> Tensor:
    """``max(centre - half, 0) < index < centre + half`` (the released rectangle, both ends exclusive)."""
    return (index > (centre - half).clamp(min=0)) & (index < centre + half)


def attentive_erase(
    maps: Tensor,
    erase_prob: float = 0.5,
    alpha_max: float = 0.5,
    min_half: int = 4,
    scale: float = 0.6,
    shift: float = 0.2,
    per_sample_alpha: bool = False,
    generator: torch.Generator | None = None,
    uniforms: ErasingUniforms | None = None,
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
        uniforms: the draws to use instead of drawing them (e.g. to replay the released code's draws).

    Returns:
        An :class:`ErasingResult`; ``result.maps`` is what multiplies the image.

    """
    squeeze = maps.ndim == 4
    p = maps[:, 0] if squeeze else maps
    if p.ndim != 3:
        raise ValueError(f"maps must be (B, 1, h, w) or (B, h, w), got {tuple(maps.shape)}")
    batch, height, width = p.shape
    device = p.device
    if uniforms is None:
        uniforms = draw_uniforms(batch, height, width, per_sample_alpha, generator, device)
    flat = p.detach().flatten(1)
    p_max, peak = flat.max(dim=1)
    p_min = flat.min(dim=1).values
    alpha = (uniforms.alpha.to(p.dtype) * alpha_max).expand(batch)
    threshold = p_max - (p_max - p_min) * alpha
    above = p.detach() > threshold[:, None, None]

    half_h, valid_h = _half_sizes(_extent(above, dim=2), uniforms.half_h, min_half)
    half_w, valid_w = _half_sizes(_extent(above, dim=1), uniforms.half_w, min_half)
    valid = valid_h & valid_w
    chosen = uniforms.coin.to(p.dtype) < erase_prob

    rows = torch.arange(height, device=device)[None, :, None]
    cols = torch.arange(width, device=device)[None, None, :]
    peak_y, peak_x = (peak // width)[:, None, None], (peak % width)[:, None, None]
    rectangle = _inside(rows, peak_y, half_h[:, None, None]) & _inside(cols, peak_x, half_w[:, None, None])
    region = above & rectangle & (chosen & valid)[:, None, None]
    erased = region.flatten(1).sum(dim=1) > 1  # a single-pixel E is not erased (released code)
    region = region & erased[:, None, None]

    rescaled = scale * p + shift
    keep = uniforms.noise.to(p.dtype) < (1.0 - rescaled.detach())
    dropped = region & ~keep
    out = rescaled * (~dropped).to(rescaled.dtype)
    out = out[:, None] if squeeze else out
    return ErasingResult(out, region, dropped, above, alpha.clone(), threshold, erased, valid)
