"""A second synthetic WSOL dataset with statistics unlike the demo's: clutter, other-class distractors, bias.

Each image shows one *target* object of class ``k`` (the demo's class shapes, in class colours, with a
class texture: stripes, checks or dots at a class period and angle), of varied scale and aspect ratio, on
a textured background (smooth noise, stripes, checks or dots in a background colour). Smaller, faded
*distractor* objects of **other** classes sit in the background, partly hidden behind the target, so a
map that lights every object is wrong. The target is drawn last: its mask and box are exactly its pixels.

Each class also owns a background style (colour + texture family). ``background_bias`` is the
probability that an image's background is its own class's style (otherwise the style of a uniformly
drawn *other* class): at 0.7 the background predicts the label 70% of the time, the shortcut that
background-aware methods exist to resist; ``None`` draws the style independently of the label.
``unbiased_test`` keeps the bias out of the test split (train and val keep it).

Written in the CUB_200_2011 layout by the demo's writer and cached like the demo
(:class:`~wsol_lightning.data.synthetic.GeneratedCUBDataModule`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from wsol_lightning.data.fakes import FakeSample, write_cub_files
from wsol_lightning.data.synthetic import SHAPES, GeneratedCUBDataModule, mask_box, palette, shape_mask

VERSION = 1
OBJECT_TEXTURES = ("stripes", "checks", "dots")
BACKGROUND_TEXTURES = ("noise", "stripes", "checks", "dots")


def texture(kind: str, height: int, width: int, period: float, angle: float) -> np.ndarray:
    """A ``(H, W)`` float32 brightness pattern in [0.7, 1.1] (``noise`` is drawn by the caller)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if kind == "stripes":
        on = np.sin(u * 2 * np.pi / period) > 0
    elif kind == "checks":
        on = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    else:  # dots
        on = (np.mod(u, period) - period / 2) ** 2 + (np.mod(v, period) - period / 2) ** 2 < (period / 3.5) ** 2
    return np.where(on, 1.1, 0.7).astype(np.float32)


def object_patch(rng: np.random.Generator, label: int, num_classes: int, side: int,
                 aspect_max: float) -> tuple[np.ndarray, np.ndarray]:
    """One object of class ``label``: ``(h, w, 3)`` float32 colours and its ``(h, w)`` bool mask."""
    aspect = float(np.exp(rng.uniform(-np.log(aspect_max), np.log(aspect_max))))
    w, h = max(3, round(side * np.sqrt(aspect))), max(3, round(side / np.sqrt(aspect)))
    mask = cv2.resize(shape_mask(SHAPES[label % len(SHAPES)], side).astype(np.uint8), (w, h),
                      interpolation=cv2.INTER_NEAREST).astype(bool)
    kind = OBJECT_TEXTURES[label % len(OBJECT_TEXTURES)]
    pattern = texture(kind, h, w, period=3.0 + label % 4, angle=np.pi * label / num_classes)
    colour = palette(num_classes, 0.9, 0.95)[label]
    return colour[None, None, :] * pattern[..., None], mask


def render_clutter_sample(rng: np.random.Generator, label: int, num_classes: int, size: tuple[int, int],
                          background_bias: float | None, object_scale: tuple[float, float],
                          aspect_max: float, distractors: tuple[int, int], distractor_scale: tuple[float, float],
                          distractor_opacity: float = 0.55) -> tuple[np.ndarray, np.ndarray, int]:
    """Render one image: ``(H, W, 3)`` uint8, the target's ``(H, W)`` bool mask and the background's class."""
    w, h = size
    others = [c for c in range(num_classes) if c != label]
    if background_bias is None:
        bg_class = int(rng.integers(num_classes))
    else:
        bg_class = label if rng.random() < background_bias or not others else int(rng.choice(others))
    bg_colour = palette(num_classes, 0.45, 0.6, offset=0.5 / num_classes)[bg_class]
    kind = BACKGROUND_TEXTURES[bg_class % len(BACKGROUND_TEXTURES)]
    if kind == "noise":
        pattern = 0.9 + cv2.resize(rng.normal(0, 0.12, size=(8, 8)).astype(np.float32), (w, h))
    else:
        pattern = texture(kind, h, w, period=float(rng.uniform(5, 9)), angle=float(rng.uniform(0, np.pi)))
    image = bg_colour[None, None, :] * pattern[..., None]
    short = min(w, h)
    side = max(4, int(short * rng.uniform(*object_scale)))
    for _ in range(int(rng.integers(distractors[0], distractors[1] + 1)) if others else 0):
        d_side = max(3, int(side * rng.uniform(*distractor_scale)))
        patch, mask = object_patch(rng, int(rng.choice(others)), num_classes, d_side, aspect_max)
        y, x = int(rng.integers(0, h - mask.shape[0] + 1)), int(rng.integers(0, w - mask.shape[1] + 1))
        region = image[y:y + mask.shape[0], x:x + mask.shape[1]]
        region[mask] = distractor_opacity * patch[mask] + (1 - distractor_opacity) * region[mask]
    patch, mask = object_patch(rng, label, num_classes, min(side, short), aspect_max)
    patch, mask = patch[:h, :w], mask[:h, :w]
    y, x = int(rng.integers(0, h - mask.shape[0] + 1)), int(rng.integers(0, w - mask.shape[1] + 1))
    image[y:y + mask.shape[0], x:x + mask.shape[1]][mask] = patch[mask]
    full = np.zeros((h, w), dtype=bool)
    full[y:y + mask.shape[0], x:x + mask.shape[1]] = mask
    image = image + rng.normal(0, 8, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), full, bg_class


def clutter_class_names(num_classes: int) -> list[str]:
    """Class names: shape and object texture (``disc_stripes``, ...), numbered past the combinations."""
    names = []
    for k in range(num_classes):
        name = f"{SHAPES[k % len(SHAPES)]}_{OBJECT_TEXTURES[k % len(OBJECT_TEXTURES)]}"
        names.append(name + (f"_{k // 18}" if k >= 18 else ""))
    return names


def generate_clutter(root: Path, params: dict) -> list[int]:
    """Write the dataset described by ``params`` to ``root/CUB_200_2011``; return each image's background class."""
    rng = np.random.default_rng(params["seed"])
    k, per_class = params["num_classes"], params["images_per_class"]
    n_test = max(1, round(per_class * params["test_fraction"]))
    samples, backgrounds = [], []
    for label in range(k):
        for i in range(per_class):
            size = tuple(int(rng.integers(params["source_size"][0], params["source_size"][1] + 1)) for _ in "wh")
            is_train = i >= n_test
            bias = None if params["unbiased_test"] and not is_train else params["background_bias"]
            image, mask, bg = render_clutter_sample(
                rng, label, k, size, bias, tuple(params["object_scale"]),
                params["aspect_max"], tuple(params["distractors"]), tuple(params["distractor_scale"]),
                params["distractor_opacity"])
            samples.append(FakeSample(label, f"clutter_{label}_{i:04d}", image, mask_box(mask),
                                      mask.astype(np.uint8) * 255, is_train=is_train))
            backgrounds.append(bg)
    write_cub_files(root / "CUB_200_2011", clutter_class_names(k), samples)
    return backgrounds


class ClutterSyntheticDataModule(GeneratedCUBDataModule):
    """Seeded cluttered synthetic dataset with other-class distractors and a background-bias knob (CUB layout).

    Args:
        data_dir: cache root (as :class:`~wsol_lightning.data.SyntheticDataModule`).
        num_classes: number of classes K.
        images_per_class: images generated per class (``test_fraction`` of them are test).
        image_size: network input side.
        source_size: min/max side of the generated images (width and height drawn separately).
        background_bias: probability that the background style is the label's own (else another class's);
            ``None``: drawn independently of the label. 0.7 is the background-biased variant.
        unbiased_test: draw the test split's backgrounds independently of the label whatever
            ``background_bias`` (train and val keep the bias): a classifier that learnt the background then
            falls to chance on test.
        object_scale: min/max target side (before the aspect stretch) as a fraction of the short side.
        aspect_max: aspect ratios are drawn log-uniformly in ``[1 / aspect_max, aspect_max]``.
        distractors: min/max number of distractor objects (of other classes) per image.
        distractor_scale: min/max distractor side as a fraction of the target's.
        distractor_opacity: how much of a distractor's colour covers the background under it (1 = as vivid
            as the target; below 1 the target stands out, which keeps the image's label unambiguous).
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
        num_classes: int = 10,
        images_per_class: int = 60,
        image_size: int = 64,
        source_size: tuple[int, int] = (72, 96),
        background_bias: float | None = None,
        unbiased_test: bool = False,
        object_scale: tuple[float, float] = (0.25, 0.55),
        aspect_max: float = 2.0,
        distractors: tuple[int, int] = (1, 3),
        distractor_scale: tuple[float, float] = (0.4, 0.7),
        distractor_opacity: float = 0.55,
        test_fraction: float = 0.3,
        val_per_class: int = 6,
        seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        resize_size: int | None = None,
        skip_bad: bool = False,
        train_targets: bool = False,
    ) -> None:
        if background_bias is not None and not 0.0 <= background_bias <= 1.0:
            raise ValueError(f"background_bias must be None or in [0, 1]; got {background_bias}")
        if aspect_max < 1.0 or not 0 < object_scale[0] <= object_scale[1] <= 1.0:
            raise ValueError(f"need aspect_max >= 1 and 0 < object_scale min <= max <= 1; got {aspect_max}, "
                             f"{object_scale}")
        if not 0.0 <= distractor_opacity <= 1.0:
            raise ValueError(f"distractor_opacity must be in [0, 1]; got {distractor_opacity}")
        if num_classes < 2 or not 0 <= distractors[0] <= distractors[1]:
            raise ValueError(f"need num_classes >= 2 and 0 <= distractors min <= max; got {num_classes}, "
                             f"{distractors}")
        params = {
            "generator": "clutter", "version": VERSION, "num_classes": num_classes,
            "images_per_class": images_per_class, "source_size": list(source_size),
            "background_bias": background_bias, "unbiased_test": unbiased_test,
            "object_scale": list(object_scale), "aspect_max": aspect_max,
            "distractors": list(distractors), "distractor_scale": list(distractor_scale),
            "distractor_opacity": distractor_opacity,
            "test_fraction": test_fraction, "seed": seed,
        }
        super().__init__(params, data_dir, val_per_class=val_per_class, image_size=image_size, seed=seed,
                         batch_size=batch_size, num_workers=num_workers, resize_size=resize_size,
                         skip_bad=skip_bad, train_targets=train_targets)

    def read_class_names(self) -> list[str]:
        """Class names, known without generating anything."""
        return clutter_class_names(self.params["num_classes"])

    def generate(self, root: Path) -> None:
        """Write the dataset to ``root/CUB_200_2011``."""
        generate_clutter(root, self.params)
