"""Albumentations pipelines (box- and mask-aware) and wsolevaluation-exact eval geometry.

Train (the papers' recipe): ``Resize(resize, resize)`` -> ``RandomCrop(size)`` -> ``HorizontalFlip``
-> ``Normalize(ImageNet)`` -> ``ToTensorV2``; boxes travel as ``pascal_voc`` (exclusive ``x1, y1``:
our inclusive boxes get ``+1`` on the way in and ``-1`` on the way out), masks with nearest
neighbour. ``resize`` defaults to ``round(size * 256 / 224)``.

Eval: wsolevaluation's own loader, exactly: torchvision ``Resize((size, size))`` on the PIL image (PIL
bilinear, antialiased when shrinking; no crop) -> ``ToTensor`` -> ``Normalize`` (:class:`EvalTransform`; the
tensor equals wsolevaluation's to the last bit, ``tests/parity/test_eval_loader_parity.py``). GT boxes and
masks are not resized with the image: :func:`scale_boxes` and :func:`resize_mask` reproduce wsolevaluation
(``int(x * new_w / orig_w)``, evaluated left to right, and ``cv2.INTER_NEAREST``).
"""

from __future__ import annotations

import albumentations as A  # noqa: I001
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image

import wsol_lightning  # noqa: F401  (sets NO_ALBUMENTATIONS_UPDATE before albumentations loads)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BOX_FIELD = "box_labels"


def default_resize(image_size: int) -> int:
    """Return the train resize side for a crop of ``image_size`` (256 for 224)."""
    return round(image_size * 256 / 224)


def train_transform(
    image_size: int = 224,
    resize_size: int | None = None,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    boxes: bool = True,
) -> A.Compose:
    """Build the training pipeline (resize square -> random crop -> flip -> normalise -> tensor).

    Call it as ``t(image=..., mask=..., bboxes=..., box_labels=...)`` with pascal_voc (exclusive)
    float boxes; :func:`to_albu_boxes` / :func:`from_albu_boxes` convert from/to our inclusive ints.
    ``boxes=False``: a pipeline for images (and masks) only, ``t(image=...)``; it draws the same crops
    and flips for the same seed.
    """
    resize = resize_size or default_resize(image_size)
    if resize < image_size:
        raise ValueError(f"resize_size ({resize}) must be >= image_size ({image_size})")
    return A.Compose(
        [
            A.Resize(resize, resize, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST),
            A.RandomCrop(image_size, image_size),
            A.HorizontalFlip(p=0.5),
            A.Normalize(mean=mean, std=std),
            ToTensorV2(),
        ],
        bbox_params=A.BboxParams(
            format="pascal_voc", label_fields=[BOX_FIELD], min_visibility=0.0, clip=True
        ) if boxes else None,
        is_check_shapes=False,  # a JPEG decoded at reduced size keeps its full-size mask (both -> resize)
    )


class EvalTransform:
    """wsolevaluation's eval loader: ``Resize((size, size))`` on PIL -> ``ToTensor`` -> ``Normalize``.

    Called like an albumentations pipeline, ``t(image=array)["image"]``, with an ``(H, W, 3)`` uint8 RGB array
    or an RGB PIL image (what the dataset passes: no array round trip); returns a float32 ``(3, size, size)``
    tensor, the same for both.

    The resize is the one torchvision's ``Resize`` calls (PIL ``resize`` bilinear, antialiased when shrinking).
    ``ToTensor`` then ``Normalize`` map each channel's byte through the same float32 operations
    (``v / 255``, ``- mean``, ``/ std``), so they are one 256-entry table per channel, computed once with those
    operations and applied with ``cv2.LUT`` straight into the channel planes: the tensor is bit-identical to
    torchvision's (``tests/parity/test_eval_loader_parity.py``) at a fraction of the cost.
    """

    def __init__(self, image_size: int, mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        from torchvision import transforms

        self.image_size = image_size
        self.mean, self.std = tuple(mean), tuple(std)
        codes = torch.arange(256, dtype=torch.uint8).view(1, 1, 256).expand(3, 1, 256)
        tables = transforms.Normalize(mean, std)(transforms.ToTensor()(codes.permute(1, 2, 0).numpy()))
        self.tables = np.ascontiguousarray(tables.reshape(3, 256).numpy())  # (3, 256) float32

    def __call__(self, image: np.ndarray | Image.Image, **_: object) -> dict[str, torch.Tensor]:
        """Return ``{"image": (3, size, size) float32}`` for an ``(H, W, 3)`` uint8 RGB ``image``."""
        if isinstance(image, Image.Image):
            if image.mode != "RGB":
                raise ValueError(f"eval images must be RGB; got a PIL image in mode {image.mode!r}")
        elif image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"eval images must be (H, W, 3) uint8 RGB arrays; got {image.dtype} {image.shape}")
        else:
            image = Image.fromarray(image)
        side = self.image_size
        resized = np.asarray(image.resize((side, side), Image.BILINEAR))
        out = np.empty((3, side, side), dtype=np.float32)
        for c, plane in enumerate(cv2.split(resized)):
            cv2.LUT(plane, self.tables[c], dst=out[c])
        return {"image": torch.from_numpy(out)}

    def __repr__(self) -> str:
        return f"EvalTransform(Resize(({self.image_size}, {self.image_size}), bilinear), ToTensor, " \
               f"Normalize(mean={self.mean}, std={self.std}))"


def eval_transform(
    image_size: int = 224,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> EvalTransform:
    """Build the eval pipeline: anisotropic resize to ``image_size`` squared (PIL), tensor, normalise."""
    return EvalTransform(image_size, mean, std)


def to_albu_boxes(boxes: np.ndarray) -> np.ndarray:
    """Inclusive int ``(n, 4)`` boxes -> pascal_voc float boxes (exclusive ``x1, y1``)."""
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, 2:] += 1.0
    return out


def from_albu_boxes(boxes: np.ndarray | list, width: int, height: int) -> np.ndarray:
    """Pascal_voc float boxes -> inclusive int64 boxes clipped to a ``width x height`` image.

    ``x0`` is floored and ``x1 = ceil(x1) - 1`` so the box covers every pixel it touches.
    """
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(arr):
        return np.zeros((0, 4), dtype=np.int64)
    x0 = np.clip(np.floor(arr[:, 0] + 1e-4), 0, width - 1)
    y0 = np.clip(np.floor(arr[:, 1] + 1e-4), 0, height - 1)
    x1 = np.clip(np.ceil(arr[:, 2] - 1e-4) - 1, x0, width - 1)
    y1 = np.clip(np.ceil(arr[:, 3] - 1e-4) - 1, y0, height - 1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def scale_boxes(boxes: np.ndarray, orig_size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """Scale inclusive boxes like wsolevaluation's ``resize_bbox``: ``int(x * new_w / orig_w)``.

    Args:
        boxes: ``(n, 4)`` int boxes in the original frame.
        orig_size: original ``(width, height)``.
        new_size: target ``(width, height)``.

    Returns:
        ``(n, 4)`` int64 boxes in the target frame.

    """
    (ow, oh), (nw, nh) = map(float, orig_size), map(float, new_size)
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    # x * new / old, left to right (not x * (new / old): 55 * (224 / 110) truncates to 111, 55 * 224 / 110 to 112)
    scaled = arr * np.array([nw, nh, nw, nh]) / np.array([ow, oh, ow, oh])
    return np.trunc(scaled).astype(np.int64)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 label mask to ``(width, height)`` with nearest neighbour (values preserved)."""
    if mask.shape[1] == size[0] and mask.shape[0] == size[1]:
        return mask
    return cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
