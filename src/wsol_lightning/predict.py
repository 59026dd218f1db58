"""Predictions as COCO: maps back to the original frame, boxes, RLE masks, ground truth and COCOeval.

Pure functions (no Lightning) used by :class:`wsol_lightning.callbacks.COCOPredictionWriter` and usable on
maps from any model. Conventions:

* a map is a float ``(H, W)`` array in [0, 1]; :func:`to_original_frame` resizes it (bilinear) from the
  model input size to the original ``(width, height)``;
* binarisation is the evaluation protocol's: ``uint8(map * 255) > int(t * max(uint8(map * 255)))``, so the
  mask is the one the metrics see at the same threshold;
* COCO boxes are the TIGHT ``[x, y, w, h]`` boxes of the mask's outer contours (``cv2.boundingRect``),
  largest first; holes make no box. (The protocol's boxes, ``boxes_at_threshold``, are wsolevaluation's:
  ``x1 = min(x + w, W - 1)``, one pixel wider, and include hole contours.)
* masks are compressed RLE (``pycocotools.mask.encode``) with ``counts`` as a str.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from tqdm.auto import tqdm

from wsol_lightning.metrics.functional import quantize_maps


def to_original_frame(scoremap: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a ``(h, w)`` float map to ``(height, width)`` bilinearly (float32, in [0, 1])."""
    scoremap = np.asarray(scoremap, dtype=np.float32)
    if scoremap.shape == (height, width):
        return scoremap
    return np.clip(cv2.resize(scoremap, (int(width), int(height)), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


#: Storage dtypes of saved maps: ``uint8`` stores the protocol's quantisation ``uint8(map * 255)``.
MAP_DTYPES = ("float32", "float16", "uint8")


def stored_map(scoremap: np.ndarray, max_side: int | None = 1024, dtype: str = "float16") -> np.ndarray:
    """The array saved for a map: at most ``max_side`` pixels on its long side, in ``dtype``.

    Args:
        scoremap: ``(H, W)`` float map in [0, 1] (original frame).
        max_side: longest side kept (area-averaged downsampling, aspect ratio kept; ``None``: full size).
        dtype: ``"float32"``, ``"float16"`` (values in [0, 1]) or ``"uint8"`` (``uint8(map * 255)`` truncated,
            the metrics' quantisation, so ``stored > int(t * stored.max())`` is the protocol's mask at the
            stored size).

    Returns:
        ``(h, w)`` array with ``max(h, w) <= max_side``.

    """
    if dtype not in MAP_DTYPES:
        raise ValueError(f"map dtype must be one of {MAP_DTYPES}, got {dtype!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"map max_side must be >= 1 or None, got {max_side}")
    scoremap = np.asarray(scoremap, dtype=np.float32)
    height, width = scoremap.shape
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        scoremap = np.clip(cv2.resize(scoremap, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
    if dtype == "uint8":
        return quantize_maps(scoremap[None])[0]
    return scoremap.astype(dtype)


def threshold_mask(scoremap: np.ndarray, threshold: float) -> np.ndarray:
    """Binary ``(H, W)`` bool mask of a map at ``threshold``, binarised exactly as the metrics do."""
    u = quantize_maps(np.asarray(scoremap)[None])[0]
    return u > int(threshold * int(u.max()))


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a ``(H, W)`` bool mask, JSON-ready (``counts`` decoded to str)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_rle`: ``(H, W)`` bool mask."""
    counts = rle["counts"]
    payload = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(payload).astype(bool)


def mask_bbox(mask: np.ndarray) -> list[float]:
    """Return COCO ``[x, y, w, h]`` of the pixels of a ``(H, W)`` bool mask (pycocotools' ``toBbox``)."""
    return [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))]


def mask_boxes(mask: np.ndarray) -> list[list[float]]:
    """Tight COCO ``[x, y, w, h]`` boxes of the outer contours of a bool mask, largest area first."""
    contours = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[-2]
    rects = [cv2.boundingRect(c) for c in contours]
    areas = [cv2.contourArea(c) for c in contours]
    order = np.argsort(-np.asarray(areas, dtype=np.float64), kind="stable")
    return [[float(v) for v in rects[i]] for i in order]


def xyxy_to_xywh(box: Sequence[int]) -> list[float]:
    """Inclusive ``x0, y0, x1, y1`` -> COCO ``[x, y, w, h]``."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def image_predictions(scoremap: np.ndarray, threshold: float, score: float, category_id: int,
                      image_id: int, max_boxes: int | None = None) -> tuple[list[dict], dict | None]:
    """Boxes and the mask of one map (already in the original frame) as COCO result records.

    Args:
        scoremap: ``(H, W)`` float map in [0, 1], original frame.
        threshold: operating threshold.
        score: confidence of the image's class (e.g. its softmax probability).
        category_id: COCO category of the predicted class.
        image_id: COCO image id.
        max_boxes: keep the largest ``max_boxes`` boxes (all outer contours when ``None``).

    Returns:
        ``(boxes, mask)``: one record per box (``bbox``, ``score`` = ``score`` x the map's peak inside the
        box) and one mask record (``segmentation`` RLE, ``bbox`` of the whole mask, ``area``), or
        ``None`` when nothing is above the threshold.

    """
    mask = threshold_mask(scoremap, threshold)
    if not mask.any():
        return [], None
    boxes = mask_boxes(mask)
    if max_boxes is not None:
        boxes = boxes[:max_boxes]
    records = []
    for x, y, w, h in boxes:
        peak = float(scoremap[int(y) : int(y + h), int(x) : int(x + w)].max())
        records.append({"image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h],
                        "score": float(score) * peak})
    rle = encode_rle(mask)
    mask_record = {"image_id": image_id, "category_id": category_id, "segmentation": rle,
                   "bbox": mask_bbox(mask),
                   "area": float(mask.sum()), "score": float(score)}
    return records, mask_record


def coco_dataset(images: list[dict], boxes: list[dict], masks: list[dict],
                 categories: list[dict]) -> dict[str, Any]:
    """Build a COCO *dataset* dict (pseudo-labels for a detector).

    Every box is an annotation; the image's mask (when any) is attached to its first (largest) box;
    ``score`` is kept on each annotation.
    """
    mask_of = {m["image_id"]: m for m in masks}
    annotations, seen = [], set()
    for record in boxes:
        ann = {"id": len(annotations) + 1, "iscrowd": 0, **record}
        x, y, w, h = record["bbox"]
        ann["area"] = float(w * h)
        image_id = record["image_id"]
        if image_id not in seen and image_id in mask_of:
            ann["segmentation"] = mask_of[image_id]["segmentation"]
            ann["area"] = mask_of[image_id]["area"]
        seen.add(image_id)
        annotations.append(ann)
    return {"info": {"description": "wsol_lightning predictions"}, "images": images,
            "annotations": annotations, "categories": categories}


def coco_evaluate(gt: dict[str, Any], results: list[dict], iou_type: str,
                  verbose: bool = True) -> dict[str, float]:
    """COCOeval of ``results`` (result records) against a COCO ground-truth dict.

    Args:
        gt: COCO dataset dict (``images``, ``annotations``, ``categories``).
        results: result records (``bbox`` for ``iou_type="bbox"``, ``segmentation`` for ``"segm"``).
        iou_type: ``"bbox"`` or ``"segm"``.
        verbose: print COCOeval's summary table.

    Returns:
        ``AP``, ``AP50``, ``AP75``, ``AR1``, ``AR10``, ``AR100`` (fractions; -1 where undefined).

    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    key = "bbox" if iou_type == "bbox" else "segmentation"
    gt = {**gt, "annotations": [a for a in gt.get("annotations", []) if key in a]}
    image_ids = {a["image_id"] for a in gt["annotations"]}
    gt["images"] = [im for im in gt.get("images", []) if im["id"] in image_ids]
    results = [r for r in results if r["image_id"] in image_ids and key in r]
    if not gt["annotations"] or not results:
        return {}
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        kept = ("image_id", "category_id", "score", key)
        records = [{k: v for k, v in r.items() if k in kept} for r in results]
        coco_dt = coco_gt.loadRes(records)
        evaluator = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    if verbose:
        print(f"COCOeval ({iou_type}):\n{sink.getvalue().split('DONE', maxsplit=2)[-1].strip()}")
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")
    return {name: float(v) for name, v in zip(names, evaluator.stats) if name not in ("APs", "APm", "APl")}


def ground_truth_from_dataset(dataset: Any, indices: Sequence[int],
                              category_ids: Sequence[int]) -> dict | None:
    """COCO ground truth (original frame) of ``indices`` of a :class:`~wsol_lightning.data.WSOLDataset`.

    Box annotations come from the index's boxes with the image's label; where the sample has a mask, the
    object mask (ignored pixels count as background) is attached to its single box, or becomes its own
    annotation when the sample has no box. Returns ``None`` for datasets without an index, and for
    multi-label data (VOC, COCO), whose index does not tell each box's class: give those a COCO ground-truth
    JSON instead.
    """
    index = getattr(dataset, "index", None)
    if index is None or getattr(index, "multi_hot", None) is not None:
        return None
    images, annotations = [], []
    read_mask = getattr(dataset, "read_mask", None)
    todo = sorted(set(int(k) for k in indices))
    for i in tqdm(todo, desc="ground truth for COCOeval", disable=len(todo) < 1000):
        label = int(index.labels[i])
        if label < 0:
            continue
        width, height = (int(v) for v in index.sizes[i])
        if width <= 0 or height <= 0:
            from PIL import Image

            with Image.open(index.root / index.image_ids[i]) as im:
                width, height = im.size
        images.append({"id": i, "file_name": index.image_ids[i], "width": width, "height": height})
        boxes = index.boxes_of(i)
        mask = None
        if read_mask is not None and index.has_masks(i):
            mask = read_mask(i, width, height) == 1
        anns = [{"bbox": xyxy_to_xywh(b), "area": float((b[2] - b[0] + 1) * (b[3] - b[1] + 1))}
                for b in boxes]
        if mask is not None and mask.any() and len(anns) <= 1:
            rle = encode_rle(mask)
            bbox = mask_bbox(mask)
            if not anns:
                anns = [{"bbox": bbox}]
            anns[0].update(segmentation=rle, area=float(mask.sum()))
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": category_ids[label],
                                "iscrowd": 0, **ann})
    if not annotations:
        return None
    categories = [{"id": c, "name": str(c)} for c in sorted(set(category_ids))]
    return {"images": images, "annotations": annotations, "categories": categories}
