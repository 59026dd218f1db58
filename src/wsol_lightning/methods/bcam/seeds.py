"""Multi-scale + flip seed maps of the official B-CAM VOC code (IRN's ``make_cam`` recipe; pure functions).

The official ``MultiObjectLocalization/step/make_bcam.py`` scores every scale ``s`` of the image and its
horizontal flip with ``ReLU(W_o F)`` (the object classifier on the pixel features), adds the flipped map
back (flipped), upsamples each scale bilinearly to the image size rounded up to a multiple of 16, sums
over scales, crops to the image and divides each class map by its maximum + 1e-5 ("high_res" seeds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

#: Scales of the official VOC seeds (``run_sample_bcam.py --cam_scales``).
OFFICIAL_VOC_SCALES = (1.0, 0.5, 1.5, 2.0)


def strided_up_size(size: Sequence[int], stride: int = 16) -> tuple[int, int]:
    """``size`` rounded up to a multiple of ``stride`` (IRN ``get_strided_up_size``)."""
    return (((int(size[0]) - 1) // stride + 1) * stride, ((int(size[1]) - 1) // stride + 1) * stride)


def rescale_images(images: Tensor, scale: float) -> Tensor:
    """``(B, 3, H, W)`` -> ``(B, 3, round(sH), round(sW))``, bicubic (``align_corners=False``).

    The official code rescales the uint8 image with PIL bicubic before normalising; this rescales the
    normalised tensor (the deliberate difference listed in the README's parity table).
    """
    if scale == 1:
        return images
    size = (int(round(images.shape[-2] * scale)), int(round(images.shape[-1] * scale)))
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False)


def multi_scale_class_maps(class_maps: Callable[[Tensor], Tensor], images: Tensor,
                           scales: Sequence[float] = OFFICIAL_VOC_SCALES, flip: bool = True,
                           stride: int = 16) -> Tensor:
    """Sum over scales (and flips) of ``ReLU(class_maps(x))`` at image size, not normalised.

    Args:
        class_maps: images ``(b, 3, h, w)`` -> class maps ``(b, N, h', w')`` (``W_o F``).
        images: ``(B, 3, H, W)``.
        scales: image scales.
        flip: add the map of the horizontally flipped image, flipped back.
        stride: maps are upsampled to the image size rounded up to this multiple, then cropped.

    Returns:
        ``(B, N, H, W)`` summed maps.

    """
    height, width = images.shape[-2:]
    up = strided_up_size((height, width), stride)
    total: Tensor | None = None
    for scale in scales:
        x = rescale_images(images, scale)
        batch = torch.cat([x, x.flip(-1)]) if flip else x
        maps = torch.relu(class_maps(batch))
        if flip:
            maps = maps[: len(x)] + maps[len(x):].flip(-1)
        maps = F.interpolate(maps, size=up, mode="bilinear", align_corners=False)
        total = maps if total is None else total + maps
    if total is None:
        raise ValueError("multi_scale_class_maps needs at least one scale")
    return total[..., :height, :width]


def max_normalize(maps: Tensor, eps: float = 1e-5) -> Tensor:
    """Divide each ``(H, W)`` map of ``(B, N, H, W)`` by its maximum + ``eps`` (IRN's seed normalisation)."""
    return maps / (maps.amax(dim=(-2, -1), keepdim=True) + eps)
