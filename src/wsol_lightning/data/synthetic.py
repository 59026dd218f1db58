"""A tiny, seeded, cached synthetic WSOL dataset written in the CUB_200_2011 layout.

Each image shows one object of one of K classes -- a class-specific shape (disc, square, triangle,
cross, diamond, hexagon, ...) in a class-specific colour with class-specific stripes -- at a random
position and scale (``object_scale`` of the short side) on a cluttered background (smooth noise,
pixel noise, grey distractor blobs). ``background_correlation`` in [0, 1] is the probability that
the background tint is the one of the object's class (otherwise a random class's tint): at 1 the
background alone predicts the class, the failure case background-aware methods target.

The dataset is generated once per parameter set (under ``data_dir`` or
``~/.cache/wsol_lightning/synthetic``, in a folder named by a hash of the parameters), written to a
temporary folder and renamed into place so concurrent processes never see half a dataset, then
read through the CUB code path (boxes and segmentation masks included).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from wsol_lightning.data.cub import CUBDataModule
from wsol_lightning.data.fakes import FakeSample, write_cub_files

SHAPES = ("disc", "square", "triangle", "cross", "diamond", "hexagon")
VERSION = 1


def shape_mask(shape: str, side: int) -> np.ndarray:
    """Return a ``side x side`` bool mask of ``shape`` filling its square."""
    m = np.zeros((side, side), dtype=np.uint8)
    s, c = side - 1, (side - 1) / 2
    if shape == "disc":
        cv2.circle(m, (int(c), int(c)), int(c), 1, -1)
    elif shape == "square":
        m[:] = 1
    elif shape == "triangle":
        cv2.fillPoly(m, [np.array([[c, 0], [s, s], [0, s]], dtype=np.int32)], 1)
    elif shape == "cross":
        t = max(side // 3, 1)
        m[:, (side - t) // 2 : (side + t) // 2 + 1] = 1
        m[(side - t) // 2 : (side + t) // 2 + 1, :] = 1
    elif shape == "diamond":
        cv2.fillPoly(m, [np.array([[c, 0], [s, c], [c, s], [0, c]], dtype=np.int32)], 1)
    else:  # hexagon
        q = s / 4
        pts = np.array([[q, 0], [s - q, 0], [s, c], [s - q, s], [q, s], [0, c]], dtype=np.int32)
        cv2.fillPoly(m, [pts], 1)
    return m.astype(bool)


def palette(k: int, saturation: float, value: float, offset: float = 0.0) -> np.ndarray:
    """``k`` RGB colours evenly spaced in hue."""
    hsv = np.zeros((1, k, 3), dtype=np.uint8)
    hsv[0, :, 0] = ((np.arange(k) / k + offset) % 1.0 * 180).astype(np.uint8)
    hsv[0, :, 1], hsv[0, :, 2] = int(saturation * 255), int(value * 255)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def render_sample(
    rng: np.random.Generator,
    label: int,
    num_classes: int,
    size: tuple[int, int],
    background_correlation: float,
    object_scale: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Render one ``(H, W, 3)`` uint8 image and its ``(H, W)`` bool object mask."""
    w, h = size
    obj_colours = palette(num_classes, 0.9, 0.95)
    bg_colours = palette(num_classes, 0.35, 0.55, offset=0.5 / num_classes)
    bg_class = label if rng.random() < background_correlation else int(rng.integers(num_classes))
    smooth = cv2.resize(rng.normal(0, 25, size=(6, 6, 3)).astype(np.float32), (w, h))
    image = bg_colours[bg_class] + smooth + rng.normal(0, 12, size=(h, w, 3)).astype(np.float32)
    for _ in range(int(rng.integers(2, 5))):  # grey distractor blobs
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(rng.integers(3, max(4, w // 8))), int(rng.integers(3, max(4, h // 8))))
        grey = float(rng.integers(40, 220))
        cv2.ellipse(image, centre, axes, float(rng.integers(180)), 0, 360, (grey, grey, grey), -1)
    side = int(min(w, h) * rng.uniform(*object_scale))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    shape = shape_mask(SHAPES[label % len(SHAPES)], side)
    yy, xx = np.mgrid[0:side, 0:side]
    period = 4 + 2 * (label // len(SHAPES)) % 6
    angle = np.pi * label / max(num_classes, 1)
    stripes = 0.75 + 0.25 * np.sign(np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period))
    patch = obj_colours[label][None, None, :] * stripes[..., None]
    region = image[y : y + side, x : x + side]
    region[shape] = patch[shape]
    mask = np.zeros((h, w), dtype=bool)
    mask[y : y + side, x : x + side] = shape
    return np.clip(image, 0, 255).astype(np.uint8), mask


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """CUB-style box ``x, y, w, h`` of a non-empty ``(H, W)`` bool mask (``w = x_max - x_min``, as written here)."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())


def generate_synthetic(
    root: Path,
    num_classes: int,
    images_per_class: int,
    source_size: tuple[int, int],
    background_correlation: float,
    object_scale: tuple[float, float],
    test_fraction: float,
    seed: int,
) -> Path:
    """Write the dataset to ``root/CUB_200_2011`` (no caching logic). Returns that folder."""
    rng = np.random.default_rng(seed)
    n_test = max(1, round(images_per_class * test_fraction))
    samples = []
    for label in range(num_classes):
        for k in range(images_per_class):
            size = (
                int(rng.integers(source_size[0], source_size[1] + 1)),
                int(rng.integers(source_size[0], source_size[1] + 1)),
            )
            image, mask = render_sample(rng, label, num_classes, size, background_correlation, object_scale)
            box = mask_box(mask)
            samples.append(
                FakeSample(
                    label,
                    f"synth_{label}_{k:04d}",
                    image,
                    box,
                    mask.astype(np.uint8) * 255,
                    is_train=k >= n_test,
                )
            )
    return write_cub_files(root / "CUB_200_2011", class_names(num_classes), samples)


def class_names(num_classes: int) -> list[str]:
    """Names of the synthetic classes (shape name, plus a variant number after the 6th)."""
    return [
        SHAPES[k % len(SHAPES)] + (f"_{k // len(SHAPES)}" if k >= len(SHAPES) else "")
        for k in range(num_classes)
    ]


class GeneratedCUBDataModule(CUBDataModule):
    """A CUB-layout datamodule whose data a seeded generator writes once per parameter set, then caches.

    Subclasses pass their generation ``params`` (JSON-serialisable; their hash names the cache folder)
    and implement :meth:`generate`. Generation goes to a temporary folder renamed into place, so
    concurrent processes never see half a dataset.

    Args:
        params: the generation parameters (a ``"generator"`` key keeps different generators apart).
        data_dir: cache root (default :func:`default_cache_dir`).
        cub_kwargs: forwarded to :class:`CUBDataModule`.

    """

    def __init__(self, params: dict, data_dir: str | Path | None = None, **cub_kwargs) -> None:
        self.params = params
        digest = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()[:12]
        cache = Path(data_dir).expanduser() if data_dir is not None else default_cache_dir()
        self.dataset_root = cache / digest
        super().__init__(self.dataset_root / "CUB_200_2011", **cub_kwargs)

    def generate(self, root: Path) -> None:  # pragma: no cover - abstract
        """Write the dataset to ``root/CUB_200_2011``."""
        raise NotImplementedError

    def prepare_data(self) -> None:
        """Generate the dataset unless a matching copy is cached."""
        self.ensure_generated()

    def setup(self, stage: str | None = None) -> None:
        """Make sure the data exists (e.g. on ranks that skipped ``prepare_data``), then set up."""
        self.ensure_generated()
        super().setup(stage)

    def build_index(self, split: str):  # noqa: D102
        self.ensure_generated()
        return super().build_index(split)

    def ensure_generated(self) -> Path:
        """Generate atomically (temporary folder + rename) if absent; return the dataset root."""
        marker = self.dataset_root / "params.json"
        if marker.is_file() and json.loads(marker.read_text()) == self.params:
            return self.dataset_root
        if self.dataset_root.exists():  # stale or half-copied by hand: replace it
            shutil.rmtree(self.dataset_root, ignore_errors=True)
        self.dataset_root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.dataset_root.name}-", dir=self.dataset_root.parent))
        try:
            self.generate(tmp)
            (tmp / "params.json").write_text(json.dumps(self.params, sort_keys=True))
            try:
                os.rename(tmp, self.dataset_root)
            except OSError:  # another process won the race: use its copy
                if not (self.dataset_root / "params.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.dataset_root


class SyntheticDataModule(GeneratedCUBDataModule):
    """Seeded synthetic shapes-on-clutter dataset (CUB layout, boxes and masks): the CPU demo data.

    Args:
        data_dir: cache root (default ``$XDG_CACHE_HOME/wsol_lightning/synthetic`` or
            ``~/.cache/...``); the data goes to ``<data_dir>/<hash of the parameters>/``.
        num_classes: number of classes K.
        images_per_class: images generated per class (``test_fraction`` of them are test).
        image_size: network input side.
        source_size: min/max side of the generated images (width and height drawn separately).
        background_correlation: probability that the background tint matches the class.
        object_scale: min/max object side as a fraction of the image's short side.
        test_fraction: share of each class in the test split.
        val_per_class: train images per class held out for val.
        seed: generation, split and shuffling seed.
        batch_size: samples per batch.
        num_workers: DataLoader workers.
        resize_size: train resize side before the crop (default ``round(image_size*256/224)``).
        skip_bad: skip unreadable samples.
        train_targets: train batches carry boxes and masks too (see :class:`WSOLDataModule`).

    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        num_classes: int = 4,
        images_per_class: int = 150,
        image_size: int = 64,
        source_size: tuple[int, int] = (72, 96),
        background_correlation: float = 0.0,
        object_scale: tuple[float, float] = (0.3, 0.5),
        test_fraction: float = 0.3,
        val_per_class: int = 10,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        resize_size: int | None = None,
        skip_bad: bool = False,
        train_targets: bool = False,
    ) -> None:
        if not 0.0 <= background_correlation <= 1.0:
            raise ValueError("background_correlation must be in [0, 1]")
        params = {
            "version": VERSION,
            "num_classes": num_classes,
            "images_per_class": images_per_class,
            "source_size": list(source_size),
            "background_correlation": background_correlation,
            "object_scale": list(object_scale),
            "test_fraction": test_fraction,
            "seed": seed,
        }
        super().__init__(
            params,
            data_dir,
            val_per_class=val_per_class,
            image_size=image_size,
            seed=seed,
            batch_size=batch_size,
            num_workers=num_workers,
            resize_size=resize_size,
            skip_bad=skip_bad,
            train_targets=train_targets,
        )

    def read_class_names(self) -> list[str]:
        """Class names, known without generating anything."""
        return class_names(self.params["num_classes"])

    def generate(self, root: Path) -> None:
        """Write the demo dataset to ``root/CUB_200_2011``."""
        p = self.params
        generate_synthetic(root, p["num_classes"], p["images_per_class"], tuple(p["source_size"]),
                           p["background_correlation"], tuple(p["object_scale"]), p["test_fraction"], p["seed"])


def default_cache_dir() -> Path:
    """``$WSOL_CACHE_DIR`` or ``$XDG_CACHE_HOME/wsol_lightning/synthetic`` (``~/.cache`` fallback)."""
    if os.environ.get("WSOL_CACHE_DIR"):
        return Path(os.environ["WSOL_CACHE_DIR"]) / "synthetic"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wsol_lightning" / "synthetic"
