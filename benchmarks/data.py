"""Images/s per worker of the library's train and eval loaders against a plain torchvision pipeline.

The reference is what a practitioner writes by hand: ``torchvision.datasets.ImageFolder`` (PIL decoding)
over the same JPEGs (a temporary folder of symbolic links, one sub-folder per class) with ``transforms.v2``:
train ``Resize((R, R)) -> RandomCrop(S) -> RandomHorizontalFlip -> ToImage -> ToDtype(float32, scale)
-> Normalize``, eval ``Resize((S, S)) -> ToImage -> ToDtype -> Normalize`` (R = 256 for S = 224, the
library's recipe). The library's loaders do more per image (the trimap read for the box and the mask,
box bookkeeping, eval masks resized), so the ratio is a floor. Target: library / torchvision >= 1.0x.
A second library row, ``images only``, reads the same index with its masks dropped (what a dataset without
masks costs, the same work as the reference). Each pass reads the whole split; passes alternate between
the pipelines; medians are reported.

    python benchmarks/data.py --data_dir /path/oxford_pets_3class --passes 5
    python benchmarks/data.py --data_dir DIR --workers 0 1 --options train_decode_draft=false
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine, parse_options, set_threads, verdict
from torch.utils.data import DataLoader

TARGET = 1.0


def images_per_second(loader: DataLoader) -> float:
    """Images/s over one full pass of ``loader`` (worker start-up included, as in an epoch)."""
    n, start = 0, time.perf_counter()
    for batch in loader:
        n += (batch["image"] if isinstance(batch, dict) else batch[0]).shape[0]
    return n / (time.perf_counter() - start)


def torchvision_loaders(dataset: Any, folder: Path, image_size: int, resize: int, batch_size: int,
                        workers: int) -> dict[str, DataLoader]:
    """ImageFolder + transforms.v2 loaders over symbolic links to the library dataset's own images."""
    from torchvision import datasets
    from torchvision.transforms import v2

    index = dataset.index
    for i, image_id in enumerate(index.image_ids):
        link = folder / f"class_{int(index.labels[i]):03d}" / Path(image_id).name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((index.root / image_id).resolve())
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    train = v2.Compose([v2.Resize((resize, resize)), v2.RandomCrop(image_size), v2.RandomHorizontalFlip(), *tail])
    evaluate = v2.Compose([v2.Resize((image_size, image_size)), *tail])
    return {name: DataLoader(datasets.ImageFolder(str(folder), transform=t), batch_size=batch_size,
                             shuffle=name == "train", num_workers=workers)
            for name, t in (("train", train), ("eval", evaluate))}


def main() -> None:
    """Time the library's and torchvision's loaders, alternating passes, and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None, help="Oxford-IIIT Pets folder (images/, annotations/)")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--passes", type=int, default=3, help="timed passes per loader (after one warm-up)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0])
    parser.add_argument("--options", default="", help='datamodule arguments, e.g. "train_decode_draft=false"')
    args = parser.parse_args()
    set_threads(1)
    from wsol_lightning.data import OxfordPetsDataModule

    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "oxford_pets_3class"
    data_dir = Path(args.data_dir or os.environ.get("WSOL_PETS_DIR", default))
    if not (data_dir / "images").is_dir():
        raise SystemExit(f"no Oxford-IIIT Pets photos at {data_dir} (pass --data_dir)")
    print(machine())
    options = parse_options(args.options)
    print(f"Oxford-IIIT Pets at {data_dir}, {args.image_size} px, batch {args.batch_size}, options {options}")
    for workers in args.workers:
        dm = OxfordPetsDataModule(str(data_dir), batch_size=args.batch_size, num_workers=workers,
                                  image_size=args.image_size, **options)
        dm.setup("fit")
        dm.setup("test")
        with tempfile.TemporaryDirectory() as tmp:
            reference = {
                "train": torchvision_loaders(dm.make_dataset("train"), Path(tmp) / "train", args.image_size,
                                             dm.resize_size or round(args.image_size * 256 / 224),
                                             args.batch_size, workers)["train"],
                "eval": torchvision_loaders(dm.make_dataset("test"), Path(tmp) / "test", args.image_size,
                                            args.image_size, args.batch_size, workers)["eval"],
            }
            ours = {"train": dm.train_dataloader(), "eval": dm.test_dataloader()}
            no_masks = {split: _without_masks(loader) for split, loader in ours.items()}
            pipelines = (("library", ours), ("library, images only", no_masks), ("torchvision", reference))
            rates: dict[tuple[str, str], list[float]] = {}
            for step in range(args.passes + 1):
                for split in ("train", "eval"):
                    for name, loaders in pipelines:
                        rate = images_per_second(loaders[split])
                        if step:
                            rates.setdefault((split, name), []).append(rate)
        per = max(workers, 1)
        for split in ("train", "eval"):
            ref = statistics.median(rates[(split, "torchvision")]) / per
            for name in ("library", "library, images only"):
                lib = statistics.median(rates[(split, name)]) / per
                ratio = lib / ref
                print(f"workers={workers} {split:5s}: {name:21s} {lib:7.1f} img/s/worker, torchvision {ref:7.1f} "
                      f"img/s/worker, ratio {ratio:.2f}x ({verdict(ratio, TARGET, higher_is_worse=False)})")


def _without_masks(loader: DataLoader) -> DataLoader:
    """The same loader over a copy of its dataset whose index has no masks (boxes then come from none)."""
    import copy

    dataset = copy.copy(loader.dataset)
    dataset.index = dataclasses.replace(dataset.index, mask_paths=None, boxes_from_mask=False)
    return DataLoader(dataset, batch_size=loader.batch_size, sampler=loader.sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn)


if __name__ == "__main__":
    main()
