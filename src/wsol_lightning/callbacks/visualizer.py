"""MapVisualizer: map overlays, per-image results, box-accuracy and pixel PR curves on val and test, any logger."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn
from PIL import Image

from wsol_lightning.callbacks import render, wandb_media
from wsol_lightning.callbacks.results import evaluate_split, table_rows
from wsol_lightning.callbacks.tiles import Tile, tiles_from_batch


def log_image_to_logger(logger: Logger, key: str, image: np.ndarray, step: int, caption: str = "") -> None:
    """Send one ``(H, W, 3)`` uint8 image to a logger that takes images (TensorBoard or any ``log_image``).

    Loggers without images (CSV) are skipped; W&B gets native media from :class:`MapVisualizer` instead.
    """
    if isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=[image], step=step, caption=[caption])
    elif isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")
    elif callable(getattr(logger, "log_image", None)):
        try:
            logger.log_image(key=key, images=[image], step=step)
        except TypeError:  # a logger with another signature: the PNG files still exist
            pass


def log_image_to_loggers(trainer: L.Trainer, key: str, image: np.ndarray, caption: str = "") -> None:
    """Send one ``(H, W, 3)`` uint8 image to every logger of ``trainer`` that takes images."""
    for logger in trainer.loggers:
        log_image_to_logger(logger, key, image, trainer.global_step, caption)


class MapVisualizer(Callback):
    """Map overlays with GT and predicted boxes, per-image results and metric curves, on val and test.

    After each validation epoch (every ``every_n_epochs``; never during the sanity check) and after testing,
    it evaluates a fixed, seeded set of images of that split: the map of the GT class, GT boxes, the boxes at
    the operating threshold the module chose on val, their IoU, the top-1 class and its score.

    * W&B (:class:`~lightning.pytorch.loggers.WandbLogger`) gets native media: ``{stage}/maps``, one
      ``wandb.Image`` per image with W&B ``boxes`` (GT and predicted, captioned with class and IoU) and
      ``masks`` (GT mask where the data has one, the map binarised at the threshold); ``{stage}/results``, a
      ``wandb.Table`` with a row for every image of the split (image for the drawn ones, id, class, predicted
      class, score, IoU, hit at IoU 0.5, threshold; :mod:`~wsol_lightning.callbacks.results`); and
      interactive charts ``{stage}/box_acc_curve`` (box accuracy against the CAM threshold, IoU 30/50/70) and
      ``{stage}/pixel_pr_curve`` (where masks exist).
    * Other loggers (TensorBoard, or any with ``log_image``) get the overlay grid and the curve figures.
    * PNG files of the grid and figures are written under ``save_dir`` for every logger (or none).

    Args:
        num_images: images per split (drawn once per split with ``seed``).
        seed: seed of the image choice.
        every_n_epochs: render every n validation epochs.
        ncols: columns of the grid.
        alpha: weight of the colourised map in the overlay.
        save_dir: folder of the PNG files (default ``<trainer.log_dir>/visualizations``); ``""`` disables
            the files.
        log_curves: also render the curves.
        min_tile_size: small inputs are enlarged (nearest neighbour) to at least this side in the grid.
        log_test: also log the test split (after ``wsol test`` or the test after ``fit``).
        table_rows: ``"all"``: the W&B results table has a row for every image of the split (one more pass of
            the model over the split, at the operating threshold, after each rendered epoch: W&B runs only);
            ``"shown"``: rows for the ``num_images`` drawn images only (no extra pass).

    """

    def __init__(self, num_images: int = 8, seed: int = 0, every_n_epochs: int = 1, ncols: int = 4,
                 alpha: float = 0.5, save_dir: str | None = None, log_curves: bool = True,
                 min_tile_size: int = 128, log_test: bool = True, table_rows: str = "all") -> None:
        super().__init__()
        if num_images < 1 or every_n_epochs < 1:
            raise ValueError("num_images and every_n_epochs must be >= 1")
        if table_rows not in ("all", "shown"):
            raise ValueError(f"MapVisualizer table_rows: {table_rows!r} is not 'all' or 'shown'")
        self.table_rows = table_rows
        self.num_images = num_images
        self.seed = seed
        self.every_n_epochs = every_n_epochs
        self.ncols = ncols
        self.alpha = alpha
        self.save_dir = save_dir
        self.log_curves = log_curves
        self.min_tile_size = min_tile_size
        self.log_test = log_test
        self._curves: dict[str, dict[str, np.ndarray]] = {}
        self._pxap: float | None = None
        self._indices: dict[str, list[int]] = {}
        self._class_names: list[str] = []
        self.written: list[Path] = []

    # ------------------------------------------------------------------ hooks
    def _due(self, trainer: L.Trainer) -> bool:
        return not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Snapshot the curves before the module resets its metrics (callbacks run first)."""
        self._snapshot(pl_module, self._due(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Render and log once the module has chosen the operating threshold for this epoch."""
        if self._due(trainer) and trainer.is_global_zero:
            self._publish(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Snapshot the test curves."""
        self._snapshot(pl_module, self.log_test)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Render and log the test split at the operating threshold chosen on val."""
        if self.log_test and trainer.is_global_zero:
            self._publish(trainer, pl_module, "test")

    def _snapshot(self, pl_module: L.LightningModule, due: bool) -> None:
        self._curves, self._pxap = {}, None
        evaluator = getattr(pl_module, "evaluator", None)
        if not self.log_curves or evaluator is None or not due:
            return
        if hasattr(evaluator, "flush"):
            evaluator.flush()  # background metric updates (async_metrics) land before the curves are read
        if getattr(evaluator.box, "_update_count", 0):
            self._curves["box"] = render.as_numpy_curves(evaluator.box.curves())
        if getattr(evaluator.pixel, "_update_count", 0):
            try:
                self._curves["pixel"] = render.as_numpy_curves(evaluator.pixel.curve())
                self._pxap = float(evaluator.pixel.compute()["pxap"])
            except ValueError:  # no object pixel seen
                self._curves.pop("pixel", None)

    def _publish(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        threshold = self.operating_threshold(pl_module)
        tiles = self.collect_tiles(trainer, pl_module, stage, threshold)
        epoch = trainer.current_epoch
        when = f"epoch {epoch}" if stage == "val" else "test"
        figures: dict[str, np.ndarray] = {}
        if tiles:
            figures["maps"] = render.make_grid([self.grid_tile(t) for t in tiles], self.ncols)
        if "box" in self._curves:
            fig = render.box_accuracy_figure(self._curves["box"], threshold, title=f"{stage}, {when}")
            figures["box_acc_curve"] = render.figure_to_array(fig)
        if "pixel" in self._curves:
            fig = render.pixel_pr_figure(self._curves["pixel"], self._pxap, title=f"{stage}, {when}")
            figures["pixel_pr_curve"] = render.figure_to_array(fig)
        out = self._output_dir(trainer)
        for stem, image in figures.items():
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                path = out / (f"{stem}_epoch{epoch:03d}.png" if stage == "val" else f"test_{stem}.png")
                Image.fromarray(image).save(path)
                self.written.append(path)
        caption = f"{when}, threshold {threshold:.3f}"
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                rows = self._table_rows(trainer, pl_module, stage, threshold)
                self._log_wandb(logger, stage, tiles, rows, trainer.global_step, f"{stage}, {when}")
            else:
                for stem, image in figures.items():
                    log_image_to_logger(logger, f"{stage}/{stem}", image, trainer.global_step, caption)

    def _table_rows(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str,
                    threshold: float) -> Iterator[tuple[int, Tile]]:
        """``(position, tile)`` of every image of the split for the results table (none with ``"shown"``)."""
        loader = self._loader(trainer, stage)
        if self.table_rows != "all" or getattr(loader, "dataset", None) is None:
            return iter(())
        return evaluate_split(pl_module, loader, threshold, self._class_names)

    def _log_wandb(self, logger: WandbLogger, stage: str, tiles: list[Tile], rows: Iterator[tuple[int, Tile]],
                   step: int, title: str) -> None:
        labels = dict(enumerate(self._class_names)) or {t.label: t.class_name for t in tiles}
        payload: dict[str, Any] = {}
        if tiles:
            images = [wandb_media.wandb_image(t, self.draw(t, boxes=False), labels) for t in tiles]
            payload[f"{stage}/maps"] = images
            positions = self._indices.get(stage, [])
            shown = dict(zip(positions, zip(tiles, images))) if len(positions) == len(tiles) else {}
            payload[f"{stage}/results"] = wandb_media.results_table(table_rows(rows, shown, wandb_media.result_row))
        if "box" in self._curves:
            payload[f"{stage}/box_acc_curve"] = wandb_media.box_accuracy_chart(self._curves["box"], title)
        if "pixel" in self._curves:
            payload[f"{stage}/pixel_pr_curve"] = wandb_media.pixel_pr_chart(self._curves["pixel"], title)
        if payload:
            logger.experiment.log({**payload, "trainer/global_step": step})

    # ------------------------------------------------------------------ helpers
    def draw(self, tile: Tile, boxes: bool = True) -> np.ndarray:
        """The tile's map over its image; with ``boxes``, GT (green) and predicted (red) boxes."""
        if not boxes:
            return render.overlay(tile.image, tile.scoremap, None, None, self.alpha)
        return render.overlay(tile.image, tile.scoremap, tile.gt_boxes, tile.pred_boxes, self.alpha)

    def grid_tile(self, tile: Tile) -> np.ndarray:
        """The tile enlarged to ``min_tile_size``, boxes drawn at that size, the largest predicted box labelled.

        The label is ``<class> IoU <best IoU of that box with a GT box>`` (the class alone without GT boxes).
        """
        factor = render.upscale_factor(tile.image.shape, self.min_tile_size)
        image = render.upscale(tile.image, self.min_tile_size)
        scoremap = render.upscale(tile.scoremap, self.min_tile_size)
        pred = render.upscale_boxes(tile.pred_boxes, factor)
        drawn = render.overlay(image, scoremap, render.upscale_boxes(tile.gt_boxes, factor), pred[1:], self.alpha)
        if not len(pred):
            return drawn
        iou = float(tile.pred_ious[0])
        label = tile.class_name if math.isnan(iou) else f"{tile.class_name} IoU {iou:.2f}"
        return render.draw_boxes(drawn, pred[:1], render.PRED_COLOUR, render.box_thickness(image.shape), [label])

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

    @staticmethod
    def _loader(trainer: L.Trainer, stage: str) -> Any:
        loaders = trainer.val_dataloaders if stage == "val" else trainer.test_dataloaders
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if loaders else None
        return loaders

    @torch.no_grad()
    def collect_tiles(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str,
                      threshold: float) -> list[Tile]:
        """Evaluate the fixed images of ``stage`` (``"val"``/``"test"``); empty when the split has no data."""
        loader = self._loader(trainer, stage)
        dataset = getattr(loader, "dataset", None)
        if dataset is None or not len(dataset) or not hasattr(pl_module, "evaluation_maps"):
            return []
        if stage not in self._indices:
            rng = np.random.default_rng(self.seed)
            n = len(dataset)
            self._indices[stage] = sorted(rng.choice(n, size=min(self.num_images, n), replace=False).tolist())
        batch = loader.collate_fn([dataset[i] for i in self._indices[stage]]) if loader.collate_fn else None
        if batch is None:
            rank_zero_warn(f"MapVisualizer: the chosen {stage} images could not be loaded; no overlay this time")
            return []
        batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
        was_training = pl_module.training
        pl_module.eval()
        try:
            logits, maps = pl_module.evaluation_maps(batch)
        finally:
            pl_module.train(was_training)
        self._class_names = list(getattr(getattr(trainer, "datamodule", None), "class_names", None) or [])
        return tiles_from_batch(render.denormalize(batch["image"]), maps, logits, batch["label"],
                                batch.get("boxes"), batch.get("mask"), threshold, self._class_names,
                                batch.get("image_id"))
