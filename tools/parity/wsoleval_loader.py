"""Golden fixture: the eval input tensor of wsolevaluation's own loader on real photos, and its box scaling.

    python tools/parity/wsoleval_loader.py --wsolevaluation /path/to/clovaai/wsolevaluation \
        --images /work/shared/data/oxford_pets_3class/images

Runs ``data_loaders.get_data_loader`` (the test split's transform: ``Resize((224, 224))`` on PIL,
``ToTensor``, ``Normalize``) from the clone on a few Pets photos (a temporary metadata folder names them), and
``evaluation.resize_bbox`` on seeded boxes and image sizes. Writes
``tests/fixtures/parity/common/wsoleval_loader.pt``: per photo its file name and the official float32 tensor,
stored exactly as a per-channel table of its distinct values plus uint8 codes (the tool checks that the table
rebuilds the tensor bit for bit), and the official scaled boxes.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _official import FIXTURES, import_from, stub_munch

from wsol_lightning.testing import save_fixture

PHOTOS = ("Abyssinian_1.jpg", "Abyssinian_201.jpg", "Bengal_1.jpg")
SIZE = 224


def _codes(tensor: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-channel sorted distinct values and uint8 codes with ``table[c][codes[c]] == tensor[c]`` exactly."""
    tables, codes = [], []
    for channel in tensor:
        table = torch.unique(channel)
        if len(table) > 256:
            raise RuntimeError("more than 256 distinct values in a channel: not a uint8 image")
        code = torch.searchsorted(table, channel).to(torch.uint8)
        if not torch.equal(table[code.long()], channel):
            raise RuntimeError("the code table does not rebuild the tensor exactly")
        tables.append(table)
        codes.append(code)
    return tables, torch.stack(codes)


def official_tensors(clone: Path, images: Path) -> list[torch.Tensor]:
    """The test-split tensors of wsolevaluation's loader for :data:`PHOTOS`."""
    stub_munch()
    loaders = import_from(clone, "data_loaders")
    with tempfile.TemporaryDirectory() as tmp:
        for split in ("train", "val", "test"):
            folder = Path(tmp) / split
            folder.mkdir()
            (folder / "image_ids.txt").write_text("\n".join(PHOTOS))
            (folder / "class_labels.txt").write_text("\n".join(f"{p},0" for p in PHOTOS))
        roots = {split: str(images) for split in ("train", "val", "test")}
        built = loaders.get_data_loader(data_roots=roots, metadata_root=tmp, batch_size=1, workers=0,
                                        resize_size=256, crop_size=SIZE, proxy_training_set=False)
        dataset = built["test"].dataset
        return [dataset[i][0] for i in range(len(PHOTOS))]


def official_box_scaling(clone: Path, seed: int = 0, count: int = 3000) -> dict[str, torch.Tensor]:
    """``evaluation.resize_bbox`` on seeded inclusive boxes of seeded image sizes, to 224 x 224."""
    stub_munch()
    evaluation = import_from(clone, "evaluation")
    rng = np.random.default_rng(seed)
    sizes = rng.integers(100, 700, size=(count, 2))
    boxes = np.zeros((count, 4), np.int64)
    for i, (w, h) in enumerate(sizes):
        x = np.sort(rng.integers(0, w, 2))
        y = np.sort(rng.integers(0, h, 2))
        boxes[i] = (x[0], y[0], x[1], y[1])
    scaled = np.array([evaluation.resize_bbox(b, s, (SIZE, SIZE)) for b, s in zip(boxes, sizes)], np.int64)
    named = (("sizes", sizes), ("boxes", boxes), ("scaled", scaled))
    return {k: torch.from_numpy(v.astype(np.int32)) for k, v in named}


def main() -> None:
    """Run the official loader and box scaling, write the fixture."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wsolevaluation", type=Path, required=True, help="local clone of clovaai/wsolevaluation")
    parser.add_argument("--images", type=Path, required=True, help="folder of the Oxford-IIIT Pets photos")
    parser.add_argument("--output", type=Path, default=FIXTURES / "common" / "wsoleval_loader.pt")
    args = parser.parse_args()
    photos = []
    for name, tensor in zip(PHOTOS, official_tensors(args.wsolevaluation, args.images)):
        tables, codes = _codes(tensor)
        photos.append({"name": name, "tables": tables, "codes": codes})
    fixture = {"source": "clovaai/wsolevaluation data_loaders.get_data_loader (test) and evaluation.resize_bbox",
               "image_size": SIZE, "photos": photos, "boxes": official_box_scaling(args.wsolevaluation)}
    size = save_fixture(args.output, fixture)
    print(f"wrote {args.output} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
