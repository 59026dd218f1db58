"""Hide-and-Seek's input transform: hide random square patches of each training image.

Singh & Lee, "Hide-and-Seek: Forcing a Network to be Meticulous for Weakly-supervised Object and Action
Localization", ICCV 2017, as re-implemented by clovaai/wsolevaluation (``wsol/method/has.py``): the image is
cut into ``grid_size`` x ``grid_size`` pixel cells (the last row/column may be smaller), and each cell of each
image is set to 0 independently when its uniform draw is ``<= drop_rate``. The network is CAM's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def grid_cells(height: int, width: int, grid_size: int) -> tuple[int, int]:
    """Number of cells ``(rows, cols)`` of a ``height`` x ``width`` image cut into ``grid_size`` pixel cells."""
    return math.ceil(height / grid_size), math.ceil(width / grid_size)


def draw_hiding_uniforms(batch: int, height: int, width: int, grid_size: int,
                         generator: torch.Generator | None = None, device: torch.device | None = None) -> Tensor:
    """One uniform in [0, 1) per cell: ``(batch, rows, cols)`` (``generator=None``: the global generator)."""
    rows, cols = grid_cells(height, width, grid_size)
    return torch.rand(batch, rows, cols, generator=generator, device=device)


def hide_patches(images: Tensor, grid_size: int, drop_rate: float, uniforms: Tensor | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
    """Zero every grid cell whose draw is ``<= drop_rate`` (a new tensor; ``images`` is not modified).

    Args:
        images: ``(B, C, H, W)`` normalised images.
        grid_size: cell side in pixels (the reference's ``has_grid_size``); 0 returns ``images`` unchanged.
        drop_rate: probability of hiding a cell (the reference's ``has_drop_rate``).
        uniforms: ``(B, rows, cols)`` draws in [0, 1) to use (row-major cells, rows along H), e.g. to replay
            the reference's ``random.random()`` sequence; ``None`` draws them from ``generator``.
        generator: source of the draws when ``uniforms`` is ``None`` (``None``: the global generator).

    Returns:
        ``(B, C, H, W)`` images with the hidden cells set to 0.

    """
    if grid_size < 0 or not 0.0 <= drop_rate <= 1.0:
        raise ValueError(f"HaS needs grid_size >= 0 and drop_rate in [0, 1], got {grid_size}, {drop_rate}")
    if grid_size == 0:
        return images
    batch, _, height, width = images.shape
    if uniforms is None:
        uniforms = draw_hiding_uniforms(batch, height, width, grid_size, generator, images.device)
    expected = (batch, *grid_cells(height, width, grid_size))
    if tuple(uniforms.shape) != expected:
        raise ValueError(f"HaS uniforms have shape {tuple(uniforms.shape)}, expected {expected}")
    hidden = uniforms.to(images.device) <= drop_rate  # (B, rows, cols)
    hidden = hidden.repeat_interleave(grid_size, dim=1).repeat_interleave(grid_size, dim=2)[:, :height, :width]
    return torch.where(hidden[:, None], torch.zeros((), dtype=images.dtype, device=images.device), images)
