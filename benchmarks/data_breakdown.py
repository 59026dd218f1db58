"""Per-sample cost of each stage of the library's and torchvision's eval and train pipelines (ms per image).

The stages call the same functions the loaders call, one sample at a time, the two pipelines interleaved
sample by sample (so load changes hit both alike), one torch/OpenCV thread:

- library eval: JPEG decode (``open_rgb``), PIL resize, tensor conversion + normalisation (one table per
  channel), mask-file stat (the cache key), mask PNG decode (``read_gray``), trimap -> mask values (LUT), mask
  box, mask resize (nearest), cache store, cache read (a warm epoch instead of the four before), box scaling
  + sample dict, collate;
- torchvision eval: ``default_loader`` (decode + ``convert("RGB")``), ``Resize``, ``ToImage``, ``ToDtype``,
  ``Normalize``, ``default_collate``;
- train (library: reduced-size decode + the albumentations pipeline; torchvision: loader + v2 pipeline).

    python benchmarks/data_breakdown.py --data_dir /path/oxford_pets_3class
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from _common import machine, set_threads


class Stages:
    """Accumulates seconds per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def __call__(self, name: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args)
        self.seconds[name] += time.perf_counter() - start
        return out

    def report(self, title: str, n: int) -> None:
        print(title)
        for name, s in self.seconds.items():
            print(f"  {name:44s} {s / n * 1e3:6.3f} ms")
        print(f"  {'total':44s} {sum(self.seconds.values()) / n * 1e3:6.3f} ms")


def library_eval(ds: Any, i: int, t: Stages, warm: Stages) -> dict[str, Any]:
    """One eval sample the library's way, stage by stage (``warm`` gets the cache read instead of the decode)."""
    from wsol_lightning.data import transforms as T
    from wsol_lightning.data.dataset import open_rgb
    from wsol_lightning.data.mask_cache import MaskCache, file_signature
    from wsol_lightning.data.masks import TRIMAP_LUT, mask_box, mask_files, read_gray

    idx, tf = ds.index, ds.transform
    image, (w, h) = t("JPEG decode (open_rgb)", open_rgb, idx.root / idx.image_ids[i])
    side = tf.image_size
    resized = t("PIL resize (bilinear, antialiased)", lambda: np.asarray(image.resize((side, side), 2)))

    def convert() -> torch.Tensor:
        out = np.empty((3, side, side), dtype=np.float32)
        for c, plane in enumerate(cv2.split(resized)):
            cv2.LUT(plane, tf.tables[c], dst=out[c])
        return torch.from_numpy(out)

    tensor = t("to tensor + normalise (table per channel)", convert)
    files = [p for p, _ in mask_files(idx, i)]
    key = t("mask file stat (cache key)", lambda: (w, h, (side, side), file_signature(files)))
    raw = t("mask PNG decode (read_gray)", read_gray, files[0])
    full = t("trimap -> mask values (LUT)", cv2.LUT, raw, TRIMAP_LUT)
    box = t("mask box (boundingRect)", mask_box, full)
    mask = t("mask resize (nearest)", T.resize_mask, full, (side, side))
    cache = MaskCache(1 << 30)
    t("mask cache store (bit-pack)", cache.put, i, key, mask, box)
    warm("mask file stat (cache key)", lambda: (w, h, (side, side), file_signature(files)))
    warm("mask cache read (unpack)", cache.get, i, key)

    def assemble() -> dict[str, Any]:
        return {"image": tensor, "label": torch.tensor(int(idx.labels[i])), "index": torch.tensor(i),
                "image_id": idx.image_ids[i], "orig_size": torch.tensor([w, h]),
                "boxes": torch.as_tensor(T.scale_boxes(box, (w, h), (side, side))).reshape(-1, 4),
                "mask": torch.from_numpy(mask)}

    return t("box scaling + sample dict", assemble)


def augment(transform: Any, image: np.ndarray) -> torch.Tensor:
    """The library's train pipeline on one decoded image (labels only: no boxes, no mask)."""
    return transform(image=image)["image"]


def torchvision_eval(path: Path, pipeline: Any, t: Stages) -> torch.Tensor:
    """One eval sample the torchvision way, stage by stage."""
    from torchvision.datasets.folder import default_loader

    x = t("default_loader (decode + convert RGB)", default_loader, str(path))
    for step in pipeline.transforms:
        x = t(type(step).__name__, step, x)
    return x


def main() -> None:
    """Print the per-stage ms per image of each pipeline over the Pets test split (eval) and train split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()
    set_threads(1)
    cv2.setNumThreads(1)
    from torch.utils.data import default_collate
    from torchvision.transforms import v2

    from wsol_lightning.data import OxfordPetsDataModule
    from wsol_lightning.data.collate import wsol_collate
    from wsol_lightning.data.dataset import read_image_reduced

    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "oxford_pets_3class"
    data_dir = Path(args.data_dir or os.environ.get("WSOL_PETS_DIR", default))
    print(machine())
    dm = OxfordPetsDataModule(str(data_dir), batch_size=args.batch_size, num_workers=0, image_size=args.image_size)
    dm.setup("fit")
    dm.setup("test")
    s = args.image_size
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    tv_eval = v2.Compose([v2.Resize((s, s)), *tail])
    r = dm.resize_size or round(s * 256 / 224)
    tv_train = v2.Compose([v2.Resize((r, r)), v2.RandomCrop(s), v2.RandomHorizontalFlip(), *tail])

    ds = dm.make_dataset("test")
    ours, warm, theirs = Stages(), Stages(), Stages()
    batch_ours: list[dict[str, Any]] = []
    batch_theirs: list[tuple[torch.Tensor, int]] = []
    n = len(ds)
    for i in range(n):
        batch_ours.append(library_eval(ds, i, ours, warm))
        batch_theirs.append((torchvision_eval(ds.index.root / ds.index.image_ids[i], tv_eval, theirs), 0))
        if len(batch_ours) == args.batch_size or i == n - 1:
            ours("collate (per image)", wsol_collate, batch_ours)
            theirs("default_collate (per image)", default_collate, batch_theirs)
            batch_ours, batch_theirs = [], []
    print(f"eval, {n} Pets test images at {s} px, ms per image:")
    ours.report("library (cold: the mask decoded)", n)
    warm.report("library, warm epoch: these two stages replace the five mask stages above", n)
    theirs.report("torchvision", n)

    train = dm.make_dataset("train")
    ours, theirs = Stages(), Stages()
    for i in range(len(train)):
        path = train.index.root / train.index.image_ids[i]
        image, _ = ours("decode, reduced size (read_image_reduced)", read_image_reduced, path, train.draft_size)
        ours("albumentations pipeline", augment, train.transform, image)
        torchvision_eval(path, tv_train, theirs)
    print(f"train, {len(train)} Pets train images, ms per image (collate as in eval):")
    ours.report("library", len(train))
    theirs.report("torchvision", len(train))


if __name__ == "__main__":
    main()
