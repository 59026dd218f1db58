"""Reduced-size JPEG decoding for training (``train_decode_draft``): sizes, frames, and eval untouched."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsol_lightning.data import WSOLDataset
from wsol_lightning.data import transforms as T
from wsol_lightning.data.dataset import read_image, read_image_reduced
from wsol_lightning.data.fakes import write_pets_layout
from wsol_lightning.data.pets import OxfordPetsDataModule


def _photo(path: Path, width: int, height: int, fmt: str = "JPEG") -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path, fmt)
    return path


@pytest.mark.parametrize(("min_size", "expected"), [
    ((256, 256), (450, 550)),   # 1/2: 550x450 covers 256; 1/4 (275x225) would not
    ((200, 200), (225, 275)),   # 1/4: 275x225 covers 200; 1/8 (138x113) would not
    ((600, 300), (900, 1100)),  # 1/2 would give 550 < 600 wide: full size
    (None, (900, 1100)),
])
def test_jpeg_is_decoded_at_the_largest_reduction_that_covers_the_size(tmp_path, min_size, expected):
    image, size = read_image_reduced(_photo(tmp_path / "a.jpg", 1100, 900), min_size)
    assert image.shape == (*expected, 3) and image.dtype == np.uint8
    assert size == (1100, 900)  # the file's own size, for the metadata check and the box frame


def test_reduced_decoding_approximates_the_full_image(tmp_path):
    path = tmp_path / "smooth.jpg"
    x = np.linspace(0, 255, 800)
    Image.fromarray(np.stack([np.add.outer(x[:600] * 0, x)] * 3, -1).astype(np.uint8)).save(path)
    small, _ = read_image_reduced(path, (300, 250))  # 1/2: 400x300
    assert small.shape == (300, 400, 3)
    full = read_image(path)[::2, ::2].astype(float)
    assert np.abs(small.astype(float) - full).mean() < 2.0


def test_png_is_never_reduced(tmp_path):
    image, size = read_image_reduced(_photo(tmp_path / "a.png", 1100, 900, "PNG"), (100, 100))
    assert image.shape == (900, 1100, 3) and size == (1100, 900)


def test_train_sample_keeps_its_mask_and_boxes_with_reduced_decoding(tmp_path):
    pets = write_pets_layout(tmp_path / "pets", num_classes=2, images_per_class=4, quirks=False)
    index = OxfordPetsDataModule(pets, val_per_class=1, image_size=32).build_index("test")
    full = WSOLDataset(index, T.train_transform(16, 18), train=True)
    reduced = WSOLDataset(index, T.train_transform(16, 18), train=True, draft_size=(18, 18))
    shrunk = 0
    for i in range(len(index)):
        a, b = full[(i, 7)], reduced[(i, 7)]  # same augmentation seed
        w, h = Image.open(index.root / index.image_ids[i]).size
        shrunk += min(w, h) >= 36
        assert a["image"].shape == b["image"].shape == (3, 16, 16)
        assert np.array_equal(a["mask"].numpy(), b["mask"].numpy())  # resized straight from full size
        assert np.abs(a["boxes"].numpy() - b["boxes"].numpy()).max() <= 1
        assert a["orig_size"].tolist() == b["orig_size"].tolist() == [w, h]
    assert shrunk > 0  # some fakes really were decoded at half size


def test_datamodule_drafts_train_only(tmp_path):
    pets = write_pets_layout(tmp_path / "pets", num_classes=2, images_per_class=4, quirks=False)
    dm = OxfordPetsDataModule(pets, val_per_class=1, image_size=32, num_workers=0)
    dm.setup("fit")
    dm.setup("test")
    assert dm.make_dataset("train").draft_size == (37, 37)  # the train resize side
    assert dm.make_dataset("val").draft_size is None and dm.make_dataset("test").draft_size is None
    off = OxfordPetsDataModule(pets, val_per_class=1, image_size=32, num_workers=0, train_decode_draft=False)
    off.setup("fit")
    assert off.make_dataset("train").draft_size is None


def test_eval_transform_gives_the_same_tensor_from_pil_and_from_an_array(tmp_path):
    from wsol_lightning.data.dataset import open_rgb

    path = _photo(tmp_path / "a.jpg", 300, 200)
    image, size = open_rgb(path)
    transform = T.eval_transform(64)
    assert size == (300, 200) and image.mode == "RGB"
    assert transform(image=image)["image"].equal(transform(image=read_image(path))["image"])
    with pytest.raises(ValueError, match="mode 'L'"):
        transform(image=image.convert("L"))
