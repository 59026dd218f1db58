"""Reference maps that need no training: the centre-Gaussian baseline of wsolevaluation."""

from __future__ import annotations

import lightning as L
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


def centre_baseline_scores(datamodule: L.LightningDataModule, split: str = "test",
                           cam_curve_interval: float = 0.01) -> dict[str, float]:
    """MaxBoxAcc (and PxAP where masks exist) of the centre-Gaussian map on a datamodule's split.

    The floor a trained method must beat, measured with the same metric settings as the method.

    Args:
        datamodule: a WSOL datamodule (``setup`` is called for the split).
        split: ``"val"`` or ``"test"``.
        cam_curve_interval: threshold grid of the metrics.

    Returns:
        ``maxboxacc_v2`` (and the per-IoU values), plus ``pxap``/``piou`` when the split has masks.

    """
    from wsol_lightning.metrics import MaxBoxAcc, PxAP

    datamodule.setup("test" if split == "test" else "validate")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    boxes, pixels = MaxBoxAcc(cam_curve_interval=cam_curve_interval), PxAP(cam_curve_interval=cam_curve_interval)
    for batch in loader:
        b, _, h, w = batch["image"].shape
        maps = centre_gaussian_maps(b, h, w)
        boxes.update(maps, batch["boxes"])
        if "mask" in batch:
            pixels.update(maps, batch["mask"])
    scores = {k: float(v) for k, v in boxes.compute().items() if k != "best_threshold"}
    if pixels._update_count:
        scores.update({k: float(v) for k, v in pixels.compute().items()})
    return scores
