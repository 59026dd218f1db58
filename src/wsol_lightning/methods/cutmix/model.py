"""CutMix's input transform: paste a box of a shuffled copy of the batch into each image.

Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features", ICCV 2019,
as clovaai/wsolevaluation applies it (``wsol/method/cutmix.py`` and ``main.py``): with probability ``prob`` a
batch is mixed; ``lam ~ Beta(beta, beta)``; a box of side ``int(size * sqrt(1 - lam))`` along each axis is
centred at a uniform random pixel, clipped to the image, and filled from ``images[permutation]``; the mixing
weight is then recomputed from the clipped box's area. The network is CAM's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CutMixDraws:
    """The random draws of one CutMix call.

    Attributes:
        coin: uniform in [0, 1); the batch is mixed when ``prob > coin``.
        lam: the Beta(beta, beta) draw (area fraction kept before clipping).
        permutation: ``(B,)`` partner of each image.
        centre: box centre ``(row, col)``, integers in ``[0, H)`` x ``[0, W)``.

    """

    coin: float
    lam: float
    permutation: Tensor
    centre: tuple[int, int]


def draw_cutmix(batch: int, height: int, width: int, beta: float,
                generator: torch.Generator | None = None) -> CutMixDraws:
    """Draw one call's :class:`CutMixDraws` from ``generator`` (``None``: the global generator)."""
    coin = float(torch.rand((), generator=generator, dtype=torch.float64))
    g1 = _gamma(beta, generator)
    lam = g1 / (g1 + _gamma(beta, generator))
    permutation = torch.randperm(batch, generator=generator)
    row = int(torch.randint(height, (), generator=generator))
    col = int(torch.randint(width, (), generator=generator))
    return CutMixDraws(coin, lam, permutation, (row, col))


def _gamma(shape: float, generator: torch.Generator | None) -> float:
    """A Gamma(shape, 1) draw from ``generator`` (Marsaglia-Tsang; boosted for shape < 1)."""
    boost = 1.0
    if shape < 1.0:
        boost = float(torch.rand((), generator=generator, dtype=torch.float64)) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = float(torch.randn((), generator=generator, dtype=torch.float64))
        v = (1.0 + c * x) ** 3
        u = float(torch.rand((), generator=generator, dtype=torch.float64))
        if v > 0 and math.log(max(u, 1e-300)) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v * boost


def cutmix_box(height: int, width: int, lam: float, centre: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pasted box ``(r0, c0, r1, c1)`` (half-open rows ``r0:r1``, columns ``c0:c1``), clipped to the image.

    Side ``int(size * sqrt(1 - lam))`` per axis, corners ``centre -/+ side // 2`` (the reference's
    ``rand_bbox``, whose first axis is the tensor's dim 2).
    """
    cut = math.sqrt(1.0 - lam)
    half_r, half_c = int(height * cut) // 2, int(width * cut) // 2
    row, col = centre
    return (min(max(row - half_r, 0), height), min(max(col - half_c, 0), width),
            min(max(row + half_r, 0), height), min(max(col + half_c, 0), width))


def cut_and_mix(images: Tensor, permutation: Tensor, box: tuple[int, int, int, int]) -> tuple[Tensor, float]:
    """Paste ``images[permutation]`` into ``box`` of each image (a new tensor) and return the label weight.

    Args:
        images: ``(B, C, H, W)``.
        permutation: ``(B,)`` partner indices.
        box: ``(r0, c0, r1, c1)`` from :func:`cutmix_box`.

    Returns:
        Mixed images ``(B, C, H, W)`` and ``lam = 1 - box area / (H * W)``, the weight of each image's own label.

    """
    r0, c0, r1, c1 = box
    mixed = images.clone()
    mixed[:, :, r0:r1, c0:c1] = images[permutation.to(images.device), :, r0:r1, c0:c1]
    height, width = images.shape[-2:]
    return mixed, 1.0 - (r1 - r0) * (c1 - c0) / (height * width)
