"""MapVisualizer: map overlays, box-accuracy and pixel PR curves, every validation epoch, for any logger."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image

from wsol_lightning.callbacks import render
from wsol_lightning.metrics.functional import boxes_at_threshold


def log_image_to_loggers(trainer: L.Trainer, key: str, image: np.ndarray, caption: str = "") -> None:
    """Send one ``(H, W, 3)`` uint8 image to every logger of ``trainer`` that takes images.

    W&B gets ``wandb.Image`` (via ``log_image``), TensorBoard ``add_image``; other loggers with a
    ``log_image(key, images, step)`` method are tried; loggers without images (CSV) are skipped.
    """
    step = trainer.global_step
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=step, caption=[caption])
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")
        elif callable(getattr(logger, "log_image", None)):
            try:
                logger.log_image(key=key, images=[image], step=step)
            except TypeError:  # a logger with another signature: the PNG files still exist
                pass


class MapVisualizer(Callback):
    """Overlays of localisation maps with GT (green) and predicted (red) boxes, plus metric curves.

    After each validation epoch (every ``every_n_epochs``; never during the sanity check) it renders a
    fixed, seeded set of val images: the map of the GT class over the image, GT boxes and the boxes at the
    operating threshold the module chose on val. It also plots the box accuracy against the CAM threshold
    (``MaxBoxAcc.curves()``, operating threshold marked) and, where masks exist, the pixel PR curve
    (``PxAP.curve()``). Each figure is written as a PNG under ``save_dir`` and sent to every logger that
    takes images (W&B, TensorBoard): keys ``val/maps``, ``val/box_acc_curve``, ``val/pixel_pr_curve``.

    Args:
        num_images: images in the overlay grid (drawn once from the val split with ``seed``).
        seed: seed of the image choice.
        every_n_epochs: render every n validation epochs.
        ncols: columns of the grid.
        alpha: weight of the colourised map in the overlay.
        save_dir: folder of the PNG files (default ``<trainer.log_dir>/visualizations``); ``""`` disables
            the files.
        log_curves: also render the curves.
        min_tile_size: small inputs are enlarged (nearest neighbour) to at least this side in the grid.

    """

    def __init__(self, num_images: int = 8, seed: int = 0, every_n_epochs: int = 1, ncols: int = 4,
                 alpha: float = 0.5, save_dir: str | None = None, log_curves: bool = True,
                 min_tile_size: int = 128) -> None:
        super().__init__()
        if num_images < 1 or every_n_epochs < 1:
            raise ValueError("num_images and every_n_epochs must be >= 1")
        self.num_images = num_images
        self.seed = seed
        self.every_n_epochs = every_n_epochs
        self.ncols = ncols
        self.alpha = alpha
        self.save_dir = save_dir
        self.log_curves = log_curves
        self.min_tile_size = min_tile_size
        self._curves: dict[str, dict[str, np.ndarray]] = {}
        self._pxap: float | None = None
        self._indices: list[int] | None = None
        self.written: list[Path] = []

    # ------------------------------------------------------------------ hooks
    def _due(self, trainer: L.Trainer) -> bool:
        return not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Snapshot the curves before the module resets its metrics (callbacks run first)."""
        self._curves, self._pxap = {}, None
        evaluator = getattr(pl_module, "evaluator", None)
        if not self.log_curves or evaluator is None or not self._due(trainer):
            return
        if getattr(evaluator.box, "_update_count", 0):
            self._curves["box"] = render.as_numpy_curves(evaluator.box.curves())
        if getattr(evaluator.pixel, "_update_count", 0):
            try:
                self._curves["pixel"] = render.as_numpy_curves(evaluator.pixel.curve())
                self._pxap = float(evaluator.pixel.compute()["pxap"])
            except ValueError:  # no object pixel seen
                self._curves.pop("pixel", None)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Render and log once the module has chosen the operating threshold for this epoch."""
        if not self._due(trainer) or not trainer.is_global_zero:
            return
        threshold = self.operating_threshold(pl_module)
        grid = self.render_overlays(trainer, pl_module, threshold)
        epoch = trainer.current_epoch
        if grid is not None:
            self._emit(trainer, "val/maps", grid, f"epoch {epoch}, threshold {threshold:.3f}", "maps", epoch)
        if "box" in self._curves:
            fig = render.box_accuracy_figure(self._curves["box"], threshold, title=f"val, epoch {epoch}")
            self._emit(trainer, "val/box_acc_curve", render.figure_to_array(fig), "", "box_acc_curve", epoch)
        if "pixel" in self._curves:
            fig = render.pixel_pr_figure(self._curves["pixel"], self._pxap, title=f"val, epoch {epoch}")
            image = render.figure_to_array(fig)
            self._emit(trainer, "val/pixel_pr_curve", image, "", "pixel_pr_curve", epoch)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def operating_threshold(pl_module: L.LightningModule) -> float:
        """Return the module's operating threshold (its evaluator's default when none was chosen yet)."""
        value = float(getattr(pl_module, "operating_threshold", math.nan))
        if math.isnan(value):
            value = float(getattr(getattr(pl_module, "evaluator", None), "default_threshold", 0.2))
        return value

    def _output_dir(self, trainer: L.Trainer) -> Path | None:
        if self.save_dir == "":
            return None
        if self.save_dir is not None:
            return Path(self.save_dir)
        return Path(trainer.log_dir or trainer.default_root_dir) / "visualizations"

    def _emit(self, trainer: L.Trainer, key: str, image: np.ndarray, caption: str, stem: str,
              epoch: int) -> None:
        out = self._output_dir(trainer)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{stem}_epoch{epoch:03d}.png"
            Image.fromarray(image).save(path)
            self.written.append(path)
        log_image_to_loggers(trainer, key, image, caption)

    def _val_loader(self, trainer: L.Trainer) -> Any:
        loaders = trainer.val_dataloaders
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if loaders else None
        return loaders

    @torch.no_grad()
    def render_overlays(self, trainer: L.Trainer, pl_module: L.LightningModule,
                        threshold: float) -> np.ndarray | None:
        """Return the overlay grid of the fixed val images, or ``None`` when there is no val data."""
        loader = self._val_loader(trainer)
        dataset = getattr(loader, "dataset", None)
        if dataset is None or not hasattr(pl_module, "evaluation_maps"):
            return None
        if self._indices is None:
            n = len(dataset)
            rng = np.random.default_rng(self.seed)
            self._indices = sorted(rng.choice(n, size=min(self.num_images, n), replace=False).tolist())
        samples = [dataset[i] for i in self._indices]
        batch = loader.collate_fn(samples) if loader.collate_fn is not None else None
        if batch is None:
            rank_zero_warn("MapVisualizer: the chosen val images could not be loaded; no overlay this epoch")
            return None
        batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
        was_training = pl_module.training
        pl_module.eval()
        try:
            _, maps = pl_module.evaluation_maps(batch)
        finally:
            pl_module.train(was_training)
        images = render.denormalize(batch["image"])
        maps_np = maps.float().cpu().numpy()
        gt_boxes = batch.get("boxes") or [None] * len(images)
        tiles = []
        for image, scoremap, gt in zip(images, maps_np, gt_boxes):
            pred = boxes_at_threshold(scoremap, threshold, keep_empty=False)
            tile = render.overlay(image, scoremap, None if gt is None else gt.cpu(), pred, self.alpha)
            tiles.append(render.upscale(tile, self.min_tile_size))
        return render.make_grid(tiles, self.ncols)
