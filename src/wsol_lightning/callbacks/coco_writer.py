"""COCOPredictionWriter: ``wsol predict`` output as COCO JSON (boxes + RLE masks), maps and overlays."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from PIL import Image
from tqdm.auto import tqdm

from wsol_lightning import predict as P
from wsol_lightning.callbacks import render
from wsol_lightning.metrics.functional import boxes_at_threshold


class COCOPredictionWriter(BasePredictionWriter):
    """Write predictions as COCO files, in the ORIGINAL image frame.

    For each image: the map of the top-1 class (resized from the model input to the original size
    given by the batch's ``orig_size``), binarised at the operating threshold exactly as the metrics do,
    gives the boxes (one per contour, largest first) and an RLE mask. The threshold is ``threshold`` when
    given, else the module's (chosen on val, stored in the checkpoint). Files in ``output_dir``:

    * ``predictions.json``: a COCO *dataset* (``images``, ``annotations`` with ``bbox``, ``score`` and, on
      each image's first box, ``segmentation``; ``categories``): pseudo-labels a detector can train on;
    * ``results_bbox.json`` / ``results_segm.json``: COCO *result* lists (``image_id``, ``category_id``,
      ``bbox`` or ``segmentation``, ``score``) for ``COCO.loadRes`` / COCOeval;
    * ``maps/<id>.npy`` (float32, original frame) and ``overlays/<id>.png`` (model input frame) on request;
    * ``coco_eval.json``: COCOeval box and mask AP where ground truth exists (``ground_truth`` JSON, or
      boxes/masks of the predicted split's dataset).

    Image ids are the dataset positions (``batch["index"]``); ``file_name`` is the batch's ``image_id``.
    Under DDP every rank writes a part and rank 0 merges them.

    Args:
        output_dir: output folder.
        threshold: operating threshold (``None``: the module's).
        max_boxes: keep the largest ``max_boxes`` boxes per image (``None``: all contours).
        save_maps: write ``maps/<id>.npy``.
        save_overlays: write ``overlays/<id>.png``.
        evaluate: run COCOeval where ground truth exists.
        ground_truth: optional COCO ground-truth JSON whose ``file_name`` values match the image ids.
        category_ids: COCO category id of each class (default: the datamodule's ``category_ids`` or
            ``class + 1``).

    """

    def __init__(self, output_dir: str = "predictions", threshold: float | None = None,
                 max_boxes: int | None = None, save_maps: bool = False, save_overlays: bool = False,
                 evaluate: bool = True, ground_truth: str | None = None,
                 category_ids: list[int] | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.threshold = threshold
        self.max_boxes = max_boxes
        self.save_maps = save_maps
        self.save_overlays = save_overlays
        self.evaluate = evaluate
        self.ground_truth = ground_truth
        self.category_ids = category_ids
        self.metrics: dict[str, dict[str, float]] = {}
        self._reset()

    def _reset(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.boxes: list[dict[str, Any]] = []
        self.masks: list[dict[str, Any]] = []
        self._count = 0
        self._num_classes = 0

    # ------------------------------------------------------------------ hooks
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Reset the records and create the folders."""
        self._reset()
        self.metrics = {}
        for sub, wanted in (("", True), ("maps", self.save_maps), ("overlays", self.save_overlays)):
            if wanted:
                (self.output_dir / sub).mkdir(parents=True, exist_ok=True)

    def _categories(self, trainer: L.Trainer, num_classes: int) -> list[int]:
        ids = self.category_ids or getattr(trainer.datamodule, "category_ids", None)
        return list(ids) if ids is not None else list(range(1, num_classes + 1))

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Convert one batch of predictions to COCO records (and maps/overlays files)."""
        maps = prediction["maps"].detach().float().cpu().numpy()
        probs = torch.softmax(prediction["logits"].detach().float(), dim=1).cpu()
        classes = prediction["pred_class"].detach().cpu().tolist()
        threshold = self.threshold if self.threshold is not None else float(prediction["threshold"])
        if math.isnan(threshold):
            raise ValueError("no operating threshold: pass COCOPredictionWriter(threshold=...) or a "
                             "checkpoint whose threshold was chosen on val")
        self._num_classes = probs.shape[1]
        categories = self._categories(trainer, self._num_classes)
        size = batch["image"].shape[-1], batch["image"].shape[-2]
        orig = batch["orig_size"].cpu().tolist() if "orig_size" in batch else [size] * len(maps)
        names = batch.get("image_id") or [None] * len(maps)
        indices = batch["index"].cpu().tolist() if "index" in batch else None
        images_rgb = render.denormalize(batch["image"]) if self.save_overlays else None
        for b, scoremap in enumerate(maps):
            image_id = int(indices[b]) if indices is not None else self._count
            self._count += 1
            width, height = (int(v) for v in orig[b])
            full = P.to_original_frame(scoremap, width, height)
            score = float(probs[b, classes[b]])
            boxes, mask = P.image_predictions(full, threshold, score, categories[classes[b]], image_id,
                                              self.max_boxes)
            self.boxes.extend(boxes)
            if mask is not None:
                self.masks.append(mask)
            self.images.append({"id": image_id, "file_name": names[b] or f"{image_id:08d}", "width": width,
                                "height": height, "pred_class": int(classes[b]), "score": score,
                                "threshold": threshold})
            if self.save_maps:
                np.save(self.output_dir / "maps" / f"{image_id:08d}.npy", full)
            if images_rgb is not None:
                pred = boxes_at_threshold(scoremap, threshold, keep_empty=False)
                tile = render.overlay(images_rgb[b], scoremap, None, pred)
                Image.fromarray(tile).save(self.output_dir / "overlays" / f"{image_id:08d}.png")

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Merge the ranks' records, write the JSON files and evaluate where ground truth exists."""
        world = trainer.world_size
        if world > 1:
            part = self.output_dir / f".part_rank{trainer.global_rank}.json"
            part.write_text(json.dumps({"images": self.images, "boxes": self.boxes, "masks": self.masks}))
            trainer.strategy.barrier("coco_writer_parts")
            if not trainer.is_global_zero:
                return
            self._reset()
            for rank in tqdm(range(world), desc="merging prediction parts"):
                path = self.output_dir / f".part_rank{rank}.json"
                data = json.loads(path.read_text())
                self.images += data["images"]
                self.boxes += data["boxes"]
                self.masks += data["masks"]
                path.unlink()
        self._write_files(trainer)

    # ------------------------------------------------------------------ output
    def _write_files(self, trainer: L.Trainer) -> None:
        self.images.sort(key=lambda im: im["id"])
        names = list(getattr(trainer.datamodule, "class_names", None) or [])
        ids = self._categories(trainer, self._num_classes)
        categories = [{"id": c, "name": names[k] if k < len(names) else f"class_{k}"}
                      for k, c in enumerate(ids)]
        dataset = P.coco_dataset(self.images, self.boxes, self.masks, categories)
        with tqdm(total=3, desc="writing COCO files", disable=len(self.images) < 1000) as bar:
            for name, payload in (("predictions.json", dataset), ("results_bbox.json", self.boxes),
                                  ("results_segm.json", [{k: v for k, v in m.items() if k != "bbox"}
                                                         for m in self.masks])):
                (self.output_dir / name).write_text(json.dumps(payload))
                bar.update()
        rank_zero_info(f"COCOPredictionWriter: {len(self.images)} images, {len(self.boxes)} boxes, "
                       f"{len(self.masks)} masks -> {self.output_dir}")
        if self.evaluate:
            self._evaluate(trainer)

    def _load_ground_truth(self, trainer: L.Trainer) -> dict | None:
        if self.ground_truth:
            gt = json.loads(Path(self.ground_truth).read_text())
            by_name = {im["file_name"]: im["id"] for im in gt.get("images", [])}
            remap = {im["id"]: by_name.get(im["file_name"]) for im in self.images}
            for record in (*self.boxes, *self.masks):
                record["image_id"] = remap.get(record["image_id"], -1)
            return gt
        loaders = trainer.predict_dataloaders
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        dataset = getattr(loader, "dataset", None)
        if dataset is None:
            return None
        ids = self._categories(trainer, self._num_classes)
        return P.ground_truth_from_dataset(dataset, [im["id"] for im in self.images], ids)

    def _evaluate(self, trainer: L.Trainer) -> None:
        gt = self._load_ground_truth(trainer)
        if gt is None:
            return
        for iou_type, records in (("bbox", self.boxes), ("segm", self.masks)):
            stats = P.coco_evaluate(gt, records, iou_type)
            if stats:
                self.metrics[iou_type] = stats
        if not self.metrics:
            return
        (self.output_dir / "coco_eval.json").write_text(json.dumps(self.metrics, indent=2))
        flat = {f"predict/{t}_{k}": v for t, stats in self.metrics.items() for k, v in stats.items()}
        for logger in trainer.loggers:
            logger.log_metrics(flat, step=trainer.global_step)
        summary = ", ".join(f"{t} AP {s['AP']:.3f} AP50 {s['AP50']:.3f}" for t, s in self.metrics.items())
        rank_zero_info(f"COCOeval: {summary} (written to {self.output_dir / 'coco_eval.json'})")
