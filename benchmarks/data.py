"""Images/s per worker of the library's train and eval loaders against a plain torchvision pipeline.

The reference is what a practitioner writes by hand: ``torchvision.datasets.ImageFolder`` (PIL decoding)
over the same JPEGs (a temporary folder of symbolic links, one sub-folder per class) with ``transforms.v2``:
train ``Resize((R, R)) -> RandomCrop(S) -> RandomHorizontalFlip -> ToImage -> ToDtype(float32, scale)
-> Normalize``, eval ``Resize((S, S)) -> ToImage -> ToDtype -> Normalize`` (R = 256 for S = 224, the
library's recipe). Target: library / torchvision >= 1.0x on both splits.

Rows (the library's real configuration first):
- train: the train loader as the datamodule builds it (image labels only: no mask is read); then, for
  information, ``train_targets=True`` (boxes and masks read and augmented too, what training cost before).
- eval, masks included (the headline: PxAP needs them), ``cold``: the first pass, every trimap decoded (a new
  mask cache, filled as it goes; a new loader, so new workers); ``warm``: later passes of one loader, the
  resized masks from the cache (per-epoch validation from its second epoch). Then, for information, the same
  index with its masks dropped (``images only``: the reference's work).
Each pass reads the whole split; every library pass follows a torchvision pass of the same split, and the ratio
is the median over the passes of the two rates' quotient (robust to a load that changes from pass to pass).

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


def _rows(dm: Any, cold_dm: Any, tv: dict[str, DataLoader]) -> dict[str, tuple[str, Any]]:
    """Row name -> (split, a callable giving the loader of one pass)."""
    from wsol_lightning.data.mask_cache import MaskCache

    full = _copy_datamodule(dm, train_targets=True)
    warm = dm.test_dataloader()
    cold_set = cold_dm.make_dataset("test")

    def cold() -> DataLoader:
        cold_set.mask_cache = MaskCache(cold_set.mask_cache.max_bytes)  # the first epoch: nothing cached yet
        return cold_dm.test_dataloader()

    no_masks = _without_masks(cold_dm.test_dataloader())
    return {
        "train: library": ("train", dm.train_dataloader),
        "train: library, train_targets=True": ("train", full.train_dataloader),
        "train: torchvision": ("train", lambda: tv["train"]),
        "eval: library, masks, cold": ("eval", cold),
        "eval: library, masks, warm": ("eval", lambda: warm),
        "eval: library, images only": ("eval", lambda: no_masks),
        "eval: torchvision": ("eval", lambda: tv["eval"]),
    }


def _copy_datamodule(dm: Any, **changes: Any) -> Any:
    """A set-up copy of ``dm`` with some ``__init__`` arguments changed."""
    kwargs = dict(data_dir=str(dm.data_dir), batch_size=dm.batch_size, num_workers=dm.num_workers,
                  image_size=dm.image_size, train_decode_draft=dm.train_decode_draft,
                  eval_mask_cache_mb=dm.eval_mask_cache_mb, train_targets=dm.train_targets)
    copy = type(dm)(**(kwargs | changes))
    copy.setup("fit")
    copy.setup("test")
    return copy


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
            rows = _rows(dm, _copy_datamodule(dm), reference)
            rates: dict[str, list[float]] = {}
            ratios: dict[str, list[float]] = {}
            for step in range(args.passes + 1):  # step 0 warms the page cache, the workers and the mask cache
                for name, (split, loader) in rows.items():
                    if "torchvision" in name:
                        continue
                    ref = images_per_second(rows[f"{split}: torchvision"][1]())  # each pass beside its own reference
                    rate = images_per_second(loader())
                    if step:
                        rates.setdefault(name, []).append(rate)
                        rates.setdefault(f"{split}: torchvision", []).append(ref)
                        ratios.setdefault(name, []).append(rate / ref)
        per = max(workers, 1)
        print(f"workers={workers}: images/s per worker (median of {args.passes} passes); ratio = median over the "
              "passes of library / the torchvision pass just before it")
        for name, (_, _) in rows.items():
            line = f"  {name:38s} {statistics.median(rates[name]) / per:7.1f} img/s"
            if name in ratios:
                ratio = statistics.median(ratios[name])
                line += f"  {ratio:.2f}x  ({verdict(ratio, TARGET, higher_is_worse=False)})"
            print(line)
        cold, warm, train = (statistics.median(ratios[k]) for k in
                             ("eval: library, masks, cold", "eval: library, masks, warm", "train: library"))
        print(f"headline (workers={workers}): eval with masks {cold:.2f}x cold (first epoch), {warm:.2f}x warm "
              f"(later epochs); train {train:.2f}x; target >= {TARGET:g}x")


def _without_masks(loader: DataLoader) -> DataLoader:
    """The same loader over a copy of its dataset whose index has no masks (boxes then come from none)."""
    import copy

    dataset = copy.copy(loader.dataset)
    dataset.index = dataclasses.replace(dataset.index, mask_paths=None, boxes_from_mask=False)
    return DataLoader(dataset, batch_size=loader.batch_size, sampler=loader.sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn)


if __name__ == "__main__":
    main()
