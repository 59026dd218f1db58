"""``wsol eval``: score maps you made elsewhere against COCO or wsolevaluation ground truth.

One map per image, named after the image (``<maps>/<image id>.npy`` or ``.png``; the id with or without its
extension, for COCO also the numeric id as ``00000042.npy``, which ``wsol predict`` writes), is read, checked
(2-D, finite, in [0, 1] unless ``--normalize``, the expected shape) and scored with the library's own metrics
(:class:`~wsol_lightning.metrics.MaxBoxAcc`, :class:`~wsol_lightning.metrics.PxAP`) against the boxes and masks
the library's readers parse (``read_metadata``, ``read_coco``)::

    wsol eval MAPS --metadata metadata/CUB/test --image-root CUB_200_2011/images
    wsol eval MAPS --coco annotations/test.json --image-root images/test --frame original

Frames: ``resized`` (default, the protocol): maps are ``image-size x image-size`` and the ground truth is
rescaled as wsolevaluation does (boxes ``int(x * 224 / W)``, masks nearest); ``original``: maps have each
image's own size and the ground truth is used as is.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wsol_lightning.data.coco import read_coco
from wsol_lightning.data.dataset import WSOLDataset
from wsol_lightning.data.index import DataError, DatasetIndex
from wsol_lightning.data.metadata import read_metadata
from wsol_lightning.data.transforms import resize_mask, scale_boxes
from wsol_lightning.metrics import MaxBoxAcc, PxAP
from wsol_lightning.metrics.functional import normalize_maps


class MapFileError(ValueError):
    """A user-supplied map is missing or unusable; the message names the file."""


def map_candidates(maps_dir: Path, image_id: str, numeric_id: int | None = None) -> list[Path]:
    """Files that may hold the map of ``image_id``, in the order they are tried."""
    stems = [image_id, str(Path(image_id).with_suffix(""))]
    if numeric_id is not None:
        stems += [f"{numeric_id:08d}", str(numeric_id)]
    return [maps_dir / f"{stem}{ext}" for stem in dict.fromkeys(stems) for ext in (".npy", ".png")]


def load_map(path: Path, shape: tuple[int, int], normalize: bool = False) -> np.ndarray:
    """Read one map (``.npy`` float or ``.png`` 8/16-bit grey) as float64 ``shape``, checked.

    Raises:
        MapFileError: not 2-D, wrong shape, NaN/inf, or outside [0, 1] without ``normalize``.

    """
    try:
        if path.suffix == ".npy":
            scoremap = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as image:
                scoremap = np.asarray(image)
            if scoremap.ndim == 3:
                raise MapFileError(f"{path}: a {scoremap.shape[2]}-channel PNG; a map PNG is single-channel grey")
            scoremap = scoremap / (65535.0 if scoremap.dtype == np.uint16 else 255.0)
    except (OSError, ValueError) as error:
        if isinstance(error, MapFileError):
            raise
        raise MapFileError(f"{path}: cannot read the map ({error})") from error
    scoremap = np.asarray(scoremap, dtype=np.float64)
    if scoremap.ndim != 2:
        raise MapFileError(f"{path}: a map must be 2-D (H, W), got shape {scoremap.shape}")
    if scoremap.shape != tuple(shape):
        raise MapFileError(f"{path}: shape {scoremap.shape}, expected {tuple(shape)} (H, W) for this frame")
    if not np.isfinite(scoremap).all():
        raise MapFileError(f"{path}: {int((~np.isfinite(scoremap)).sum())} NaN/inf values")
    if normalize:
        return normalize_maps(scoremap[None])[0]
    if scoremap.min() < 0 or scoremap.max() > 1:
        raise MapFileError(f"{path}: values in [{scoremap.min():.4g}, {scoremap.max():.4g}], expected [0, 1] "
                           "(pass --normalize to min-max each map)")
    return scoremap


def read_ground_truth(args: argparse.Namespace) -> tuple[DatasetIndex, list[int | None]]:
    """The index of ``--metadata`` or ``--coco`` and, for COCO, each image's numeric id."""
    if args.coco is not None:
        root = Path(args.image_root) if args.image_root else Path(args.coco).parent
        index = read_coco(Path(args.coco), root)
        ids = {im["file_name"]: im["id"] for im in json.loads(Path(args.coco).read_text()).get("images", [])}
        return index, [ids.get(i) for i in index.image_ids]
    root = Path(args.image_root) if args.image_root else Path(args.metadata)
    index = read_metadata(args.metadata, root, mask_root=args.mask_root, require_localization=True)
    return index, [None] * len(index)


def original_size(index: DatasetIndex, i: int) -> tuple[int, int]:
    """``(width, height)`` of image ``i``: from the annotations, else read from the image file's header."""
    width, height = (int(v) for v in index.sizes[i])
    if width > 0 and height > 0:
        return width, height
    path = index.root / index.image_ids[i]
    if not path.is_file():
        raise FileNotFoundError(f"{index.source} gives no size for {index.image_ids[i]!r} and the image {path} "
                                "is missing: pass --image-root (the folder the ids are relative to)")
    with Image.open(path) as image:
        return image.size


def evaluate_folder(args: argparse.Namespace) -> dict[str, float]:
    """Score every image of the ground truth; return the metrics in percent."""
    index, numeric = read_ground_truth(args)
    if len(index) == 0:
        raise ValueError(f"{index.source}: no image to evaluate")
    box = MaxBoxAcc(iou_thresholds=args.iou_thresholds, cam_curve_interval=args.cam_curve_interval,
                    multi_contour=not args.largest_contour)
    pixel = PxAP(cam_curve_interval=args.cam_curve_interval)
    reader = WSOLDataset(index)
    maps_dir = Path(args.maps)
    num_boxed = num_masked = 0
    for i, image_id in enumerate(index.image_ids):
        files = [p for p in map_candidates(maps_dir, image_id, numeric[i]) if p.is_file()]
        if not files:
            tried = ", ".join(p.name for p in map_candidates(maps_dir, image_id, numeric[i])[:2])
            raise MapFileError(f"{maps_dir}: no map for image {image_id!r} (looked for {tried}, ...)")
        width, height = original_size(index, i)
        frame = (width, height) if args.frame == "original" else (args.image_size, args.image_size)
        scoremap = torch.from_numpy(load_map(files[0], (frame[1], frame[0]), args.normalize))[None]
        boxes = index.boxes_of(i).astype(np.int64)
        if index.clip_boxes and len(boxes):
            boxes = np.stack([boxes[:, 0].clip(0, width - 1), boxes[:, 1].clip(0, height - 1),
                              boxes[:, 2].clip(0, width - 1), boxes[:, 3].clip(0, height - 1)], axis=1)
        if len(boxes):
            box.update(scoremap, [torch.from_numpy(scale_boxes(boxes, (width, height), frame))])
            num_boxed += 1
        mask = reader.read_mask(i, width, height)
        if mask is not None:
            pixel.update(scoremap, torch.from_numpy(resize_mask(mask, frame))[None])
            num_masked += 1
    results: dict[str, float] = {}
    if num_boxed:
        values = box.compute()
        results.update({k: float(v) for k, v in values.items() if k != "best_threshold"})
        loc_iou = 50 if 50 in box.iou_thresholds else box.selection_iou
        results["maxboxacc"] = results[f"maxboxacc@{loc_iou}"]
    if num_masked:
        results.update({k: float(v) for k, v in pixel.compute().items() if k in ("pxap", "piou")})
    results.update(num_images=float(len(index)), num_images_with_boxes=float(num_boxed),
                   num_images_with_masks=float(num_masked))
    return results


def print_table(results: dict[str, float], stage: str = "eval") -> None:
    """Print the metrics as the library's val/test runs do (Lightning's results table)."""
    named = {f"{stage}/{k}": v for k, v in results.items()}
    try:
        from lightning.pytorch.loops.evaluation_loop import _EvaluationLoop

        _EvaluationLoop._print_results([named], stage)
    except (ImportError, AttributeError):  # pragma: no cover - a Lightning without the private helper
        for key, value in named.items():
            print(f"{key:<28} {value:.4f}")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``wsol eval``."""
    parser = argparse.ArgumentParser(prog="wsol eval",
                                     description="Score maps you made elsewhere against COCO or wsolevaluation "
                                     "ground truth.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("maps", help="folder of maps named after the image ids (.npy float or .png grey)")
    truth = parser.add_mutually_exclusive_group(required=True)
    truth.add_argument("--metadata", help="a wsolevaluation split folder (image_ids.txt, localization.txt, ...)")
    truth.add_argument("--coco", help="a COCO instances JSON (boxes; segmentations give PxAP)")
    parser.add_argument("--image-root", help="folder the image ids are relative to (sizes missing from the "
                        "annotations are read from the images)")
    parser.add_argument("--mask-root", help="folder of the metadata's mask paths (default: --image-root)")
    parser.add_argument("--frame", choices=("resized", "original"), default="resized",
                        help="resized: maps are image-size squared (the protocol); original: each image's size")
    parser.add_argument("--image-size", type=int, default=224, help="side of the resized frame (224)")
    parser.add_argument("--iou-thresholds", type=int, nargs="+", default=[30, 50, 70])
    parser.add_argument("--cam-curve-interval", type=float, default=0.001)
    parser.add_argument("--largest-contour", action="store_true", help="box only the largest contour (V1)")
    parser.add_argument("--normalize", action="store_true", help="min-max each map (else maps must be in [0, 1])")
    parser.add_argument("--json", help="also write the metrics to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run ``wsol eval`` on ``argv`` (without the ``eval`` word); print and return the metrics."""
    args = build_parser().parse_args(argv)
    if args.image_size < 1 or not 0 < args.cam_curve_interval < 1:
        raise SystemExit("wsol eval: --image-size must be >= 1 and --cam-curve-interval in (0, 1)")
    try:
        results = evaluate_folder(args)
    except (MapFileError, DataError, FileNotFoundError) as error:
        raise SystemExit(f"wsol eval: {error}") from error
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in results.items() if math.isfinite(v)}, indent=2))
    return results
