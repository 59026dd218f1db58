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
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from wsol_lightning import predict as P
from wsol_lightning.atomic import atomic_write_text, atomic_write_with
from wsol_lightning.callbacks import prediction_records as R
from wsol_lightning.callbacks import render
from wsol_lightning.callbacks.overlay_writer import class_label, draw_prediction, predicted_dataset, write_png


def read_ground_truth(path: str | Path) -> dict[str, Any]:
    """Read a COCO ground-truth JSON, checked before predicting (errors name the file)."""
    path = Path(path)
    try:
        gt = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"COCO ground truth {path} cannot be read: {err}") from err
    missing = [k for k in ("images", "annotations") if not isinstance(gt, dict) or k not in gt]
    if missing or not all("file_name" in im and "id" in im for im in gt["images"]):
        raise ValueError(f"COCO ground truth {path} needs 'images' (with 'id' and 'file_name') and 'annotations'"
                         + (f"; missing {missing}" if missing else ""))
    return gt


class COCOPredictionWriter(BasePredictionWriter):
    """Write predictions as COCO files, in the ORIGINAL image frame, incrementally and atomically.

    For each image: the map of the top-1 class (resized from the model input to the original size
    given by the batch's ``orig_size``), binarised at the operating threshold exactly as the metrics do,
    gives the boxes (one per contour, largest first) and an RLE mask. The threshold is ``threshold`` when
    given, else the module's (chosen on val, stored in the checkpoint). Files in ``output_dir``:

    * ``predictions.json``: a COCO *dataset* (``images``, ``annotations`` with ``bbox``, ``score`` and, on
      each image's first box, ``segmentation``; ``categories``): pseudo-labels a detector can train on; plus
      ``skipped`` (``file_name``, ``index``, ``reason`` of each unreadable input, which is NOT in ``images``)
      and ``info.complete`` (False when the run stopped early);
    * ``results_bbox.json`` / ``results_segm.json``: COCO *result* lists (``image_id``, ``category_id``,
      ``bbox`` or ``segmentation``, ``score``) for ``COCO.loadRes`` / COCOeval;
    * on request, ``maps/<id>.npy``: the map in the original frame capped at ``map_max_side`` pixels on its long
      side, stored as ``map_dtype``; ``overlays/<source>.png``: the prediction drawn on the original picture
      (the map, its boxes labelled with the class name and score, GT boxes in green where the data has them),
      named after the source file (``cats/tom.jpg`` -> ``overlays/cats/tom.png``, as
      :class:`~wsol_lightning.callbacks.OverlayWriter` draws them); ``masks/<source>.png``: the binarised map
      (0 / 255, original frame: the mask of the RLE ``segmentation``). Each image record names its files
      (``map``, ``overlay``, ``mask_png``);
    * ``coco_eval.json``: COCOeval box and mask AP where ground truth exists (``ground_truth`` JSON, or
      boxes/masks of the predicted split's dataset).

    Nothing is lost on a crash: every batch's records are appended to ``records_rank<r>.jsonl`` and flushed;
    the JSON files (and each map/overlay) are written to a temporary file and renamed, so they are complete or
    absent. If the run stops on an exception, the files are written from the images done so far (marked
    ``info.complete = false``); after a hard kill, ``python -m wsol_lightning.callbacks.prediction_records
    OUTPUT_DIR`` rebuilds them. Final JSON files of an earlier run in ``output_dir`` are removed at start.

    Image ids are the dataset positions (``batch["index"]``); ``file_name`` is the batch's ``image_id``.
    Under DDP every rank writes its records and rank 0 merges them.

    Args:
        output_dir: output folder.
        threshold: operating threshold (``None``: the module's).
        max_boxes: keep the largest ``max_boxes`` boxes per image (``None``: all contours).
        save_maps: write ``maps/<id>.npy``.
        save_overlays: write ``overlays/<source>.png`` (original frame, labelled boxes).
        save_masks: write ``masks/<source>.png`` (the binarised map, 0 / 255, original frame).
        map_max_side: longest side of a stored map (default 1024: a 6000x4000 photo stores 1024x683; ``None``:
            the full original frame). Boxes and masks are always computed at the full original size.
        map_dtype: ``"float16"`` (default, values in [0, 1]), ``"float32"`` or ``"uint8"`` (the metrics'
            ``uint8(map * 255)``).
        evaluate: run COCOeval where ground truth exists.
        ground_truth: optional COCO ground-truth JSON whose ``file_name`` values match the image ids.
        category_ids: COCO category id of each class (default: the datamodule's ``category_ids`` or
            ``class + 1``).

    """

    def __init__(self, output_dir: str = "predictions", threshold: float | None = None,
                 max_boxes: int | None = None, save_maps: bool = False, save_overlays: bool = False,
                 save_masks: bool = False, map_max_side: int | None = 1024, map_dtype: str = "float16",
                 evaluate: bool = True, ground_truth: str | None = None, category_ids: list[int] | None = None) -> None:
        super().__init__(write_interval="batch")
        P.stored_map(np.zeros((1, 1), dtype=np.float32), map_max_side, map_dtype)  # validates both options
        self.output_dir = Path(output_dir)
        self.threshold = threshold
        self.max_boxes = max_boxes
        self.save_maps = save_maps
        self.save_overlays = save_overlays
        self.save_masks = save_masks
        self.map_max_side = map_max_side
        self.map_dtype = map_dtype
        self.evaluate = evaluate
        self.ground_truth = ground_truth
        self.category_ids = category_ids
        self.metrics: dict[str, dict[str, float]] = {}
        self.records = R.Records()
        self._log: R.RecordLog | None = None
        self._gt: dict[str, Any] | None = None
        self._count = 0
        self._num_classes = 0

    @property
    def images(self) -> list[dict[str, Any]]:
        """Image records of the last run (after it ended)."""
        return self.records.images

    @property
    def boxes(self) -> list[dict[str, Any]]:
        """Box result records of the last run."""
        return self.records.boxes

    @property
    def masks(self) -> list[dict[str, Any]]:
        """Mask result records of the last run."""
        return self.records.masks

    @property
    def skipped(self) -> list[dict[str, Any]]:
        """Inputs skipped in the last run (``file_name``, ``index``, ``reason``)."""
        return self.records.skipped

    # ------------------------------------------------------------------ hooks
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Open this rank's record file, create the folders, remove final files of an earlier run."""
        self.records, self.metrics, self._count, self._num_classes = R.Records(), {}, 0, 0
        for sub, wanted in (("", True), ("maps", self.save_maps), ("overlays", self.save_overlays),
                            ("masks", self.save_masks)):
            if wanted:
                (self.output_dir / sub).mkdir(parents=True, exist_ok=True)
        if trainer.is_global_zero:
            for name in (*R.OUTPUT_FILES, "coco_eval.json"):
                (self.output_dir / name).unlink(missing_ok=True)
        self._gt = read_ground_truth(self.ground_truth) if self.ground_truth and self.evaluate else None
        self._log = R.RecordLog(R.records_path(self.output_dir, trainer.global_rank))

    def _categories(self, trainer: L.Trainer, num_classes: int) -> list[int]:
        ids = self.category_ids or getattr(trainer.datamodule, "category_ids", None)
        return list(ids) if ids is not None else list(range(1, num_classes + 1))

    def _category_records(self, trainer: L.Trainer) -> list[dict[str, Any]]:
        names = list(getattr(trainer.datamodule, "class_names", None) or [])
        ids = self._categories(trainer, self._num_classes)
        return [{"id": c, "name": names[k] if k < len(names) else f"class_{k}"} for k, c in enumerate(ids)]

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Convert one batch of predictions to COCO records, append them to the record file (flushed)."""
        assert self._log is not None, "on_predict_start was not called"
        lines: list[dict[str, Any]] = [{"kind": "skipped", **s} for s in (batch or {}).get("skipped", [])]
        maps = prediction["maps"].detach().float().cpu().numpy()
        probs = torch.softmax(prediction["logits"].detach().float(), dim=1).cpu()
        if not self._num_classes:
            self._num_classes = probs.shape[1]
            lines.insert(0, {"kind": "header", "categories": self._category_records(trainer)})
        if len(maps):
            lines += self._image_lines(trainer, prediction, batch, maps, probs)
        self._log.append(lines)

    def _image_lines(self, trainer: L.Trainer, prediction: Any, batch: Any, maps: np.ndarray,
                     probs: torch.Tensor) -> list[dict[str, Any]]:
        classes = prediction["pred_class"].detach().cpu().tolist()
        threshold = self.threshold if self.threshold is not None else float(prediction["threshold"])
        if math.isnan(threshold):
            raise ValueError("no operating threshold: pass COCOPredictionWriter(threshold=...) or a "
                             "checkpoint whose threshold was chosen on val")
        categories = self._categories(trainer, self._num_classes)
        size = batch["image"].shape[-1], batch["image"].shape[-2]
        orig = batch["orig_size"].cpu().tolist() if "orig_size" in batch else [size] * len(maps)
        names = batch.get("image_id") or [None] * len(maps)
        indices = batch["index"].cpu().tolist() if "index" in batch else None
        drawn = self.save_overlays or self.save_masks
        images_rgb = render.denormalize(batch["image"]) if drawn else None
        dataset = predicted_dataset(trainer) if drawn else None
        class_names = list(getattr(trainer.datamodule, "class_names", None) or []) if drawn else []
        lines = []
        for b, scoremap in enumerate(maps):
            image_id = int(indices[b]) if indices is not None else self._count
            self._count += 1
            width, height = (int(v) for v in orig[b])
            full = P.to_original_frame(scoremap, width, height)
            score = float(probs[b, classes[b]])
            boxes, mask = P.image_predictions(full, threshold, score, categories[classes[b]], image_id,
                                              self.max_boxes)
            image = {"id": image_id, "file_name": names[b] or f"{image_id:08d}", "width": width,
                     "height": height, "pred_class": int(classes[b]), "score": score, "threshold": threshold}
            if self.save_maps:
                stored = P.stored_map(full, self.map_max_side, self.map_dtype)
                rel = f"maps/{image_id:08d}.npy"
                atomic_write_with(self.output_dir / rel, lambda f, a=stored: np.save(f, a))
                image["map"] = {"file": rel, "width": int(stored.shape[1]), "height": int(stored.shape[0]),
                                "dtype": self.map_dtype}
            if images_rgb is not None:
                position = int(indices[b]) if indices is not None else None
                image.update(self._draw(dataset, position, image_id, names[b], images_rgb[b], full, threshold,
                                        class_label(class_names, classes[b], score)))
            lines.append({"kind": "image", "image": image, "boxes": boxes, "mask": mask})
        return lines

    def _draw(self, dataset: Any, position: int | None, image_id: int, source: str | None,
              network_rgb: np.ndarray, full: np.ndarray, threshold: float, label: str) -> dict[str, str]:
        """Write the overlay and/or mask PNG of one image (named after its source); return their paths."""
        overlay, mask, stem = draw_prediction(dataset, position, source, network_rgb, full, threshold, label)
        stem = stem or f"{image_id:08d}"
        files = {}
        if self.save_overlays:
            files["overlay"] = f"overlays/{stem}.png"
            write_png(self.output_dir / files["overlay"], overlay)
        if self.save_masks:
            files["mask_png"] = f"masks/{stem}.png"
            write_png(self.output_dir / files["mask_png"], mask.astype(np.uint8) * 255)
        return files

    def on_predict_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Merge the ranks' records, write the JSON files atomically, evaluate where ground truth exists."""
        if self._log is not None:
            self._log.close()
        world = trainer.world_size
        if world > 1:
            trainer.strategy.barrier("coco_writer_parts")
            if not trainer.is_global_zero:
                return
        paths = [R.records_path(self.output_dir, rank) for rank in range(world)]
        self.records = R.read_records(paths)
        R.write_outputs(self.output_dir, self.records, complete=True)
        for path in paths:
            path.unlink()
        self._log = None
        rank_zero_info(R.summary(self.output_dir, self.records, True, self._maps_note()))
        counts = {"predict/num_images": float(len(self.records.images)),
                  "predict/num_skipped": float(len(self.records.skipped))}
        for logger in trainer.loggers:
            logger.log_metrics(counts, step=trainer.global_step)
        if self.evaluate:
            self._evaluate(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Keep what was done: write the COCO files of the finished images (marked incomplete)."""
        if self._log is None:
            return
        self._log.close()
        path = R.records_path(self.output_dir, trainer.global_rank)
        if trainer.world_size > 1:
            rank_zero_warn(f"prediction stopped ({type(exception).__name__}); finished images are kept in "
                           f"{self.output_dir.resolve()}/records_rank*.jsonl: rebuild the COCO files with "
                           f"`python -m wsol_lightning.callbacks.prediction_records {self.output_dir}`")
            return
        self.records = R.read_records([path])
        R.write_outputs(self.output_dir, self.records, complete=False,
                        stopped_by=f"{type(exception).__name__}: {exception}")
        rank_zero_warn(R.summary(self.output_dir, self.records, False, self._maps_note())
                       + f" (stopped by {type(exception).__name__}; records kept in {path})")
        self._log = None

    def _maps_note(self) -> str | None:
        parts = []
        if self.save_maps:
            side = self.map_max_side or "full"
            parts.append(f"maps in maps/ ({self.map_dtype}, long side <= {side})")
        if self.save_overlays:
            parts.append("overlays in overlays/ (named after the source files)")
        if self.save_masks:
            parts.append("mask PNGs in masks/")
        return ", ".join(parts) or None

    def _load_ground_truth(self, trainer: L.Trainer) -> dict | None:
        if self.ground_truth:
            gt = self._gt if self._gt is not None else read_ground_truth(self.ground_truth)
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
        atomic_write_text(self.output_dir / "coco_eval.json", json.dumps(self.metrics, indent=2))
        flat = {f"predict/{t}_{k}": v for t, stats in self.metrics.items() for k, v in stats.items()}
        for logger in trainer.loggers:
            logger.log_metrics(flat, step=trainer.global_step)
        summary = ", ".join(f"{t} AP {s['AP']:.3f} AP50 {s['AP50']:.3f}" for t, s in self.metrics.items())
        rank_zero_info(f"COCOeval: {summary} (written to {self.output_dir / 'coco_eval.json'})")
