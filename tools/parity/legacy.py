"""Golden fixture: the legacy box protocols of the BAS (CVPR, IJCV) and ORNet eval code on seeded maps.

    PYTHONPATH=src:<site-packages with scikit-image> python tools/parity/legacy.py \
        --bas /path/to/wpy1999/BAS --bas-extension /path/to/wpy1999/BAS-Extension --ornet /path/to/Sierkinhane/ORNet

scikit-image is needed by the official BAS code only (this tool), never by the library. Runs, from the clones:
BAS ``BAS_inference.py`` (CUB and ILSVRC; the box and IoU/success lines, which the script writes inline, are read
from the file and executed) with ``utils/func.count_max`` and ``utils/IoU.IoU``; BAS-Extension
``WSOL/evaluator.py`` the same way; ORNet ``utils/func_utils.find_bbox`` / ``intersect`` and the IoU/success lines of
``train_2nd_step.test_multi_threshold``. Maps: 96 seeded 56x56 maps of uint8 levels (smooth blobs, border
objects, equal-size components, empty, single pixel, full, 8-connected chains, noise) at thresholds including
values equal to map levels; GT boxes seeded, jittered around an official box, and crafted at IoU exactly 0.5.
Also 400 seeded GT boxes mapped into the 256/224 frame by each paper's loader (BAS ``ResizedBBoxCrop`` /
``CenterBBoxCrop`` and the script's lines, BAS-Extension ``load_test_bbox``, ORNet ``dataset/cub.py``). Writes
``tests/fixtures/parity/common/legacy.pt``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import torch
from _official import FIXTURES, load_file, load_package, official_block

from wsol_lightning.testing import save_fixture

SIZE = 56
NUM_MAPS = 96
SEED = 12
TIES = tuple(float(np.float32(k) / np.float32(255)) for k in (51, 128, 200))
BAS_THRESHOLDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.45, 0.5, 0.7, 0.95, *TIES)
ORNET_THRESHOLDS = tuple((i + 1) / 20 for i in range(19)) + TIES


def seeded_codes(seed: int = SEED, count: int = NUM_MAPS, size: int = SIZE) -> np.ndarray:
    """``(count, size, size)`` uint8 levels; ``levels / 255`` (float32) are the maps."""
    rng = np.random.default_rng(seed)
    out = np.zeros((count, size, size), np.uint8)
    for i in range(count):
        kind, m = i % 8, out[i]
        if kind == 0:  # smooth blobs
            low = rng.random((7, 7)).astype(np.float32)
            up = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
            m[:] = np.uint8((up - up.min()) / (up.max() - up.min()) * 255)
        elif kind == 1:  # rectangles, some touching the border
            for _ in range(rng.integers(1, 4)):
                x0, y0 = rng.integers(0, size - 4, 2)
                x1, y1 = x0 + rng.integers(2, size // 2, 2)
                if rng.random() < 0.5:
                    x0 = 0 if rng.random() < 0.5 else x0
                    x1 = size if rng.random() < 0.5 else x1
                m[y0:y1, x0:x1] = np.maximum(m[y0:y1, x0:x1], rng.integers(60, 256))
        elif kind == 2:  # two equal-size components: the first in raster order must win
            side, level = rng.integers(3, 9), rng.integers(100, 256)
            m[5:5 + side, 30:30 + side] = level
            m[30:30 + side, 2:2 + side] = level
        elif kind == 4:  # a single pixel
            m[rng.integers(0, size), rng.integers(0, size)] = 255
        elif kind == 5:  # everything on
            m[:] = 255
        elif kind == 6:  # a diagonal chain (one 8-connected component) and a block
            start = rng.integers(0, size // 2)
            for k in range(rng.integers(4, 12)):
                m[start + k, start + k] = 200
            m[40:43, 5:8] = 200
        elif kind == 7:  # noise: many small components
            m[:] = np.where(rng.random((size, size)) < 0.3, rng.integers(0, 256, (size, size)), 0)
        # kind 3: empty
    return out


def maps_of(codes: np.ndarray) -> np.ndarray:
    """The float32 maps of uint8 ``codes``."""
    return codes.astype(np.float32) / np.float32(255)


def seeded_gt(rng: np.random.Generator, frame: float, low: float = 0.0) -> np.ndarray:
    """One random float box ``x0, y0, x1, y1`` inside ``[low, frame]``."""
    x = np.sort(rng.uniform(low, frame, 2))
    y = np.sort(rng.uniform(low, frame, 2))
    return np.array([x[0], y[0], x[1], y[1]])


class _Meter:
    """Stands in for the official AverageMeter: records what ``updata`` receives."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def updata(self, value: float, n: int = 1) -> None:
        self.values.append(value)


def run_bas(bas: Path, extension: Path, maps: np.ndarray, rng: np.random.Generator) -> dict:
    """Official BAS CVPR and IJCV boxes, max IoU over GT boxes and success per (map, threshold)."""
    from skimage import measure

    cvpr_func = load_file(bas / "CUB" / "utils" / "func.py", "bas_cvpr_func")
    cvpr_iou = load_file(bas / "ILSVRC" / "utils" / "IoU.py", "bas_cvpr_iou")
    ijcv_func = load_file(extension / "WSOL" / "utils" / "func.py", "bas_ijcv_func")
    ijcv_iou = load_file(extension / "WSOL" / "utils" / "IoU.py", "bas_ijcv_iou")
    box_cub = official_block(bas / "CUB" / "BAS_inference.py", "highlight = np.zeros(cam.shape)",
                             "bbox = [temp[1], temp[0], temp[3], temp[2]]")
    box_ilsvrc = official_block(bas / "ILSVRC" / "BAS_inference.py", "highlight = np.zeros(cam.shape)",
                                "bbox = [temp[1], temp[0], temp[3], temp[2]]")
    iou_cvpr = official_block(bas / "ILSVRC" / "BAS_inference.py", "max_iou = -1", "LocSet.append(max_iou)")
    hit_cvpr = official_block(bas / "ILSVRC" / "BAS_inference.py", "loc_acc = np.sum(np.array(LocSet) > 0.5)",
                              "loc_acc = np.sum(np.array(LocSet) > 0.5)")
    evaluator = extension / "WSOL" / "evaluator.py"
    box_ijcv = official_block(evaluator, "highlight = np.zeros(map_i.shape)",
                              "bbox = [temp[1], temp[0], temp[3], temp[2]]")
    iou_ijcv = official_block(evaluator, "max_iou = -1", "loc_gt[j].updata(100, 1) if max_iou >= 0.5")
    base = {"np": np, "measure": measure, "cv2": cv2, "copy": copy}
    gts, boxes, ious_cvpr, hits_cvpr, ious_ijcv, hits_ijcv = [], [], [], [], [], []
    for m in maps:
        box_at = {}
        for t in BAS_THRESHOLDS:
            ns = dict(base, cam=m, args=SimpleNamespace(threshold=t), w=SIZE, h=SIZE, count_max=cvpr_func.count_max)
            exec(box_cub, ns)  # noqa: S102 - the official lines, read from the clone
            ns2 = dict(base, cam=m, args=SimpleNamespace(threshold=t), w=SIZE, h=SIZE, count_max=cvpr_func.count_max)
            exec(box_ilsvrc, ns2)  # noqa: S102
            ns3 = dict(base, map_i=m, args=SimpleNamespace(threshold=[t], crop_size=SIZE), j=0,
                       count_max=ijcv_func.count_max)
            exec(box_ijcv, ns3)  # noqa: S102
            if not list(ns["bbox"]) == list(ns2["bbox"]) == list(ns3["bbox"]):
                raise RuntimeError(f"the official BAS scripts disagree: {ns['bbox']} {ns2['bbox']} {ns3['bbox']}")
            box_at[t] = [int(v) for v in ns["bbox"]]
        x0, y0, x1, y1 = box_at[0.5]
        crafted = np.array([x0, y0, x1, y0 + 2 * (y1 - y0 + 1) - 1], np.float64)  # IoU exactly 0.5 at t = 0.5
        near = np.array(box_at[0.3], np.float64) + rng.uniform(-3, 3, 4).round(1)  # around the box at t = 0.3
        candidates = [near, crafted, seeded_gt(rng, SIZE), np.floor(seeded_gt(rng, SIZE - 1))]
        gt = np.stack(candidates[: rng.integers(1, 5)] if rng.random() < 0.7 else candidates[1:][::-1])
        gts.append(torch.from_numpy(gt))
        for t in BAS_THRESHOLDS:
            bbox = box_at[t]
            ns = {"np": np, "IoU": cvpr_iou.IoU, "bbox": list(bbox), "gt_boxes": gt.copy(), "gt_box_num": len(gt),
                  "LocSet": []}
            exec(iou_cvpr, ns)  # noqa: S102
            exec(hit_cvpr, ns)  # noqa: S102
            ijcv = {"IoU": ijcv_iou.IoU, "bbox": list(bbox), "gt_boxes_i": gt.copy(), "gt_box_num": len(gt),
                    "loc_gt": [_Meter()], "j": 0}
            exec(iou_ijcv, ijcv)  # noqa: S102
            boxes.append(bbox)
            ious_cvpr.append(float(ns["LocSet"][0]))
            hits_cvpr.append(bool(ns["loc_acc"] > 0))
            ious_ijcv.append(float(ijcv["max_iou"]))
            hits_ijcv.append(ijcv["loc_gt"][0].values == [100])
    shape = (len(maps), len(BAS_THRESHOLDS))
    return {"thresholds": torch.tensor(BAS_THRESHOLDS, dtype=torch.float64), "gt": gts,
            "boxes": torch.tensor(boxes, dtype=torch.int16).reshape(*shape, 4),
            "iou_cvpr": torch.tensor(ious_cvpr, dtype=torch.float64).reshape(shape),
            "hit_cvpr": torch.tensor(hits_cvpr).reshape(shape),
            "iou_ijcv": torch.tensor(ious_ijcv, dtype=torch.float64).reshape(shape),
            "hit_ijcv": torch.tensor(hits_ijcv).reshape(shape)}


def run_ornet(ornet: Path, maps: np.ndarray, rng: np.random.Generator) -> dict:
    """Official ORNet boxes (all thresholds at once), IoU per GT box and success per (map, threshold, GT)."""
    func_utils = load_file(ornet / "utils" / "func_utils.py", "ornet_func_utils")
    script = ornet / "train_2nd_step.py"
    iou_block = official_block(script, "inter = intersect(pred_boxes, gt_boxes)", "IOU = inter / union")
    hit_block = official_block(script, "IOU = torch.where(IOU <= 0.5", "IOU = torch.where(IOU > 0.5")
    gts, boxes, ious, hits = [], [], [], []
    for i, m in enumerate(maps):
        found = func_utils.find_bbox(m.astype(np.float64), threshold=list(ORNET_THRESHOLDS))
        x0, y0, x1, y1 = found[ORNET_THRESHOLDS.index(0.5)]
        crafted = [x0, y0, x1, y0 + 2 * (y1 - y0)]  # IoU exactly 0.5 (0 / 0 for a zero-area box)
        near = np.array(found[ORNET_THRESHOLDS.index(0.3)], np.float64) + rng.uniform(-12, 12, 4).round(2)
        gt = np.array([near if i % 2 else seeded_gt(rng, 240.0, -16.0), crafted], np.float64)
        if i % 8 == 4:  # single pixel: a zero-area box against a zero-area GT box gives 0 / 0
            gt[1] = [x0, y0, x0, y0]
        gts.append(torch.from_numpy(gt))
        for box in found:
            boxes.append([int(v) for v in box])
            ns = {"torch": torch, "intersect": func_utils.intersect,
                  "pred_boxes": torch.tensor([box] * len(gt), dtype=torch.float64).float(),
                  "gt_boxes": torch.from_numpy(gt).float()}
            exec(iou_block, ns)  # noqa: S102
            ious.append(ns["IOU"].clone())
            exec(hit_block, ns)  # noqa: S102
            hits.append(ns["IOU"] > 0)
    shape = (len(maps), len(ORNET_THRESHOLDS))
    return {"thresholds": torch.tensor(ORNET_THRESHOLDS, dtype=torch.float64), "gt": gts,
            "boxes": torch.tensor(boxes, dtype=torch.int16).reshape(*shape, 4),
            "iou": torch.stack(ious).reshape(*shape, 2), "hit": torch.stack(hits).reshape(*shape, 2)}


def seeded_frame_boxes(rng: np.random.Generator, count: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued float GT boxes ``x0, y0, x1, y1`` (as CUB's) and their image sizes ``(W, H)``.

    A quarter lie partly or wholly in the 16/256 border the centre crop removes.
    """
    sizes = rng.integers(100, 700, size=(count, 2))
    boxes = np.zeros((count, 4))
    for i, (w, h) in enumerate(sizes):
        if i % 4 == 0:  # near the border
            x = np.sort(rng.integers(0, max(2, w // 12), 2)) + (0 if rng.random() < 0.5 else w - w // 12)
            y = np.sort(rng.integers(0, h, 2))
        else:
            x, y = np.sort(rng.integers(0, w, 2)), np.sort(rng.integers(0, h, 2))
        boxes[i] = (x[0], y[0], min(x[1], w - 1), y[1])
    return boxes, sizes


def run_frames(bas: Path, extension: Path, ornet: Path, rng: np.random.Generator) -> dict:
    """GT boxes mapped into the 256/224 frame by each official loader."""
    from PIL import Image

    boxes, sizes = seeded_frame_boxes(rng)
    load_package(bas / "CUB" / "utils", "bas_cvpr_utils")
    augment = __import__("bas_cvpr_utils.augment", fromlist=["augment"])
    cvpr_block = official_block(bas / "CUB" / "BAS_inference.py", "gt_bbox_i = list(gt_boxes)",
                                "gt_bbox_i[3] = gt_bbox_i[3] * h")
    cvpr = []
    for box, (w, h) in zip(boxes, sizes):
        ns = {"ResizedBBoxCrop": augment.ResizedBBoxCrop, "CenterBBoxCrop": augment.CenterBBoxCrop,
              "raw_img": Image.new("RGB", (int(w), int(h))), "gt_boxes": tuple(float(v) for v in box), "w": 224,
              "h": 224}
        exec(cvpr_block, ns)  # noqa: S102
        cvpr.append([float(v) for v in ns["gt_bbox_i"][:4]])
    loader = load_file(extension / "WSOL" / "DataLoader" / "CUB_200_2011.py", "bas_ijcv_cub_loader")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        names = [f"img_{i}.jpg" for i in range(len(boxes))]
        Path(tmp, "test_list.txt").write_text("".join(f"{n};0\n" for n in names))
        # the loader reads 'x0 y0 x1 y1 h w' and divides x by the last field
        Path(tmp, "test_gt.txt").write_text("".join(
            f"{b[0]} {b[1]} {b[2]} {b[3]} {float(s[1])} {float(s[0])}\n" for b, s in zip(boxes, sizes)))
        mapped = loader.load_test_bbox(tmp, str(Path(tmp, "test_list.txt")), str(Path(tmp, "test_gt.txt")), 256, 224)
        ijcv = [mapped[k].tolist() for k in (str(Path(tmp, "test", n)).replace("/", "\\") for n in names)]
    ornet_block = official_block(ornet / "dataset" / "cub.py", "boxes = torch.from_numpy(boxes).float()",
                                 "boxes[4] = boxes[4] * (256 / image.shape[0]) - 16")
    ornet_out = []
    for box, (w, h) in zip(boxes, sizes):
        xywh = np.array([0.0, box[0], box[1], box[2] - box[0], box[3] - box[1]])  # CUB's x, y, width, height
        ns = {"torch": torch, "boxes": xywh, "image": np.zeros((int(h), int(w), 3), np.uint8)}
        exec(ornet_block, ns)  # noqa: S102
        ornet_out.append(ns["boxes"][1:].clone())
    return {"boxes": torch.from_numpy(boxes), "sizes": torch.from_numpy(sizes),
            "bas_cvpr": torch.tensor(cvpr, dtype=torch.float64), "bas_ijcv": torch.tensor(ijcv, dtype=torch.int64),
            "ornet": torch.stack(ornet_out)}


def main() -> None:
    """Run the official legacy evaluation code on the seeded maps and write the fixture."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bas", type=Path, required=True, help="local clone of wpy1999/BAS")
    parser.add_argument("--bas-extension", type=Path, required=True, help="local clone of wpy1999/BAS-Extension")
    parser.add_argument("--ornet", type=Path, required=True, help="local clone of Sierkinhane/ORNet")
    parser.add_argument("--output", type=Path, default=FIXTURES / "common" / "legacy.pt")
    args = parser.parse_args()
    codes = seeded_codes()
    maps = maps_of(codes)
    rng = np.random.default_rng(SEED + 1)
    fixture = {"source": "BAS BAS_inference.py (CUB, ILSVRC), BAS-Extension WSOL/evaluator.py, ORNet find_bbox and "
                         "train_2nd_step.py IoU lines", "seed": SEED, "codes": torch.from_numpy(codes),
               "bas": run_bas(args.bas, args.bas_extension, maps, rng), "ornet": run_ornet(args.ornet, maps, rng),
               "frames": run_frames(args.bas, args.bas_extension, args.ornet, np.random.default_rng(SEED + 2))}
    size = save_fixture(args.output, fixture)
    print(f"wrote {args.output} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
