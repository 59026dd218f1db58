"""Reference maps that need no training: the centre-Gaussian baseline of wsolevaluation."""

from __future__ import annotations

import torch
from torch import Tensor


def centre_gaussian_maps(batch_size: int, height: int, width: int, sigma_fraction: float = 0.25) -> Tensor:
    """Maps that peak at the image centre and fall off as a Gaussian (Choe et al.'s centre baseline).

    Swept over thresholds, the map yields every centred box of the image's aspect ratio, so
    MaxBoxAcc of this map is the accuracy of the best centred box: the floor a WSOL method must beat.

    Args:
        batch_size: number of maps ``B``.
        height: map height ``H``.
        width: map width ``W``.
        sigma_fraction: standard deviation as a fraction of each side (any value gives the same boxes).

    Returns:
        ``(B, H, W)`` float64 maps in [0, 1], maximum 1 at the centre.

    """
    ys = (torch.arange(height, dtype=torch.float64) - (height - 1) / 2) / (sigma_fraction * height)
    xs = (torch.arange(width, dtype=torch.float64) - (width - 1) / 2) / (sigma_fraction * width)
    gauss = torch.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))
    gauss = (gauss - gauss.min()) / (gauss.max() - gauss.min())
    return gauss.expand(batch_size, height, width).clone()
