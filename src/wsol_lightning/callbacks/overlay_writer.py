"""OverlayWriter: ``wsol predict`` results drawn on the original pictures, named after the source files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from wsol_lightning.callbacks import render
from wsol_lightning.data.dataset import read_image
from wsol_lightning.predict import to_original_frame


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

    @staticmethod
    def _dataset(trainer: L.Trainer) -> Any:
        loaders = trainer.predict_dataloaders
        if isinstance(loaders, (list, tuple)):
            loaders = loaders[0] if loaders else None
        return getattr(loaders, "dataset", None)

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Draw and write every image of the batch."""
        index = getattr(self._dataset(trainer), "index", None)
        names = list(getattr(getattr(trainer, "datamodule", None), "class_names", None) or [])
        threshold = float(prediction["threshold"]) if self.threshold is None else float(self.threshold)
        probs = prediction["logits"].detach().float().softmax(dim=1).cpu()
        maps = prediction["maps"].detach().float().cpu().numpy()
        classes = prediction["pred_class"].detach().cpu().tolist()
        positions = batch["index"].cpu().tolist() if "index" in batch else [None] * len(maps)
        ids = batch.get("image_id") or [None] * len(maps)
        network_rgb = render.denormalize(batch["image"])
        for b, scoremap in enumerate(maps):
            image, gt, stem = network_rgb[b], None, f"{batch_idx:05d}_{b:03d}"
            if index is not None and ids[b] is not None:
                image = read_image(Path(index.root) / ids[b])
                if positions[b] is not None and len(index.boxes_of(positions[b])):
                    gt = index.boxes_of(positions[b])
                stem = str(Path(ids[b]).with_suffix(""))
            height, width = image.shape[:2]
            full = to_original_frame(scoremap, width, height)
            name = names[classes[b]] if classes[b] < len(names) else f"class_{classes[b]}"
            label = f"{name} {float(probs[b, classes[b]]):.2f}"
            picture, mask = render.prediction_overlay(image, full, threshold, label, gt, self.alpha)
            self._save(Image.fromarray(picture), "overlays", stem)
            if self.save_masks:
                self._save(Image.fromarray(mask.astype(np.uint8) * 255), "masks", stem)

    def _save(self, image: Image.Image, folder: str, stem: str) -> None:
        path = self.output_dir / folder / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        image.save(tmp, format="PNG")
        tmp.replace(path)  # complete or absent, never half-written
        self.written.append(path)
