"""OverlayWriter: ``wsol predict`` results drawn on the original pictures, named after the source files.

The drawing of one prediction (:func:`draw_prediction`) is shared with ``COCOPredictionWriter(save_overlays=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from wsol_lightning.atomic import atomic_write_with
from wsol_lightning.callbacks import render
from wsol_lightning.data.dataset import read_image
from wsol_lightning.predict import to_original_frame


def predicted_dataset(trainer: L.Trainer) -> Any:
    """The dataset of the (first) predict dataloader, or ``None``."""
    loaders = trainer.predict_dataloaders
    if isinstance(loaders, (list, tuple)):
        loaders = loaders[0] if loaders else None
    return getattr(loaders, "dataset", None)


def class_label(class_names: list[str], cls: int, score: float) -> str:
    """``"<class name> <score>"`` (``class_<k>`` when the name is unknown), e.g. ``"dog 0.93"``."""
    name = class_names[cls] if 0 <= cls < len(class_names) else f"class_{cls}"
    return f"{name} {score:.2f}"


def source_picture(dataset: Any, position: int | None, image_id: str | None,
                   fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """The original picture of one predicted image, its GT boxes and the output name stem.

    Args:
        dataset: the predict dataset; its ``index`` (a :class:`~wsol_lightning.data.index.DatasetIndex`) gives
            the source file (``index.root / image_id``) and the GT boxes of dataset position ``position``.
        position: the image's dataset position (``batch["index"]``), or ``None``.
        image_id: the image id (relative path of the source), or ``None``.
        fallback: ``(h, w, 3)`` uint8 picture used when the source is unknown (the network input).

    Returns:
        ``(picture (H, W, 3) uint8, GT boxes (n, 4) or None, stem)``; the stem is the source's relative path
        without its suffix (``cats/tom.jpg`` -> ``cats/tom``), ``None`` when the source is unknown.

    """
    index = getattr(dataset, "index", None)
    if index is None or image_id is None:
        return fallback, None, None
    gt = None
    if position is not None and len(index.boxes_of(position)):
        gt = index.boxes_of(position)
    return read_image(Path(index.root) / image_id), gt, str(Path(image_id).with_suffix(""))


def draw_prediction(dataset: Any, position: int | None, image_id: str | None, fallback: np.ndarray,
                    scoremap: np.ndarray, threshold: float, label: str,
                    alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray, str | None]:
    """One prediction drawn on its original picture (see :func:`source_picture` and ``render.prediction_overlay``).

    Args:
        dataset: the predict dataset (``None``: draw on ``fallback``).
        position: dataset position of the image.
        image_id: image id (relative path of the source file).
        fallback: ``(h, w, 3)`` uint8 network-input picture, used when the source is unknown.
        scoremap: ``(h', w')`` float map in [0, 1] in any frame; it is resized to the picture's.
        threshold: operating threshold.
        label: text of the predicted boxes (:func:`class_label`).
        alpha: weight of the colourised map.

    Returns:
        ``(overlay (H, W, 3) uint8, mask (H, W) bool, stem or None)``.

    """
    picture, gt, stem = source_picture(dataset, position, image_id, fallback)
    height, width = picture.shape[:2]
    full = to_original_frame(scoremap, width, height)
    overlay, mask = render.prediction_overlay(picture, full, threshold, label, gt, alpha)
    return overlay, mask, stem


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)`` or ``(H, W, 3)`` array as PNG atomically (parents created); return ``path``."""
    return atomic_write_with(path, lambda f: Image.fromarray(image).save(f, format="PNG"))


class OverlayWriter(BasePredictionWriter):
    """Write ``overlays/<source>.png`` (and optionally ``masks/<source>.png``) for every predicted image.

    Each overlay is drawn in the image's original frame: the original picture read again from disk, the map
    resized back to its size, the boxes of the map at the operating threshold (the tight boxes ``wsol predict``
    writes to COCO) labelled with the class name and its softmax score, and the GT boxes in green where the data
    has them. Files keep the source's relative path with a ``.png`` suffix (``cats/tom.jpg`` ->
    ``overlays/cats/tom.png``). ``masks/`` holds the binarised map (0 / 255) in the same frame.

    Args:
        output_dir: folder of ``overlays/`` and ``masks/``.
        threshold: operating threshold; ``None`` uses the module's (chosen on val, stored in the checkpoint).
        save_masks: also write the masks as PNG.
        alpha: weight of the colourised map.

    """

    def __init__(self, output_dir: str = "predictions", threshold: float | None = None, save_masks: bool = False,
                 alpha: float = 0.5) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.threshold = threshold
        self.save_masks = save_masks
        self.alpha = alpha
        self.written: list[Path] = []

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Draw and write every image of the batch."""
        dataset = predicted_dataset(trainer)
        names = list(getattr(getattr(trainer, "datamodule", None), "class_names", None) or [])
        threshold = float(prediction["threshold"]) if self.threshold is None else float(self.threshold)
        probs = prediction["logits"].detach().float().softmax(dim=1).cpu()
        maps = prediction["maps"].detach().float().cpu().numpy()
        classes = prediction["pred_class"].detach().cpu().tolist()
        positions = batch["index"].cpu().tolist() if "index" in batch else [None] * len(maps)
        ids = batch.get("image_id") or [None] * len(maps)
        network_rgb = render.denormalize(batch["image"])
        for b, scoremap in enumerate(maps):
            label = class_label(names, classes[b], float(probs[b, classes[b]]))
            picture, mask, stem = draw_prediction(dataset, positions[b], ids[b], network_rgb[b], scoremap,
                                                  threshold, label, self.alpha)
            stem = stem or f"{batch_idx:05d}_{b:03d}"
            self.written.append(write_png(self.output_dir / "overlays" / f"{stem}.png", picture))
            if self.save_masks:
                mask_png = mask.astype(np.uint8) * 255
                self.written.append(write_png(self.output_dir / "masks" / f"{stem}.png", mask_png))
