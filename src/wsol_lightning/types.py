"""Batch and output types shared by data, methods and metrics.

A batch is a plain ``dict`` so that Lightning moves it between devices without help; these
``TypedDict`` classes document its keys. Coordinates are integer pixels ``x0, y0, x1, y1``,
inclusive on both ends (the wsolevaluation convention), in the frame of ``image``.
"""

from __future__ import annotations

from typing import TypedDict

from torch import Tensor

#: Mask value for pixels that belong to the object.
MASK_OBJECT = 1
#: Mask value for background pixels.
MASK_BACKGROUND = 0
#: Mask value for pixels excluded from pixel metrics (uncertain regions, VOC borders).
MASK_IGNORE = 255


class WSOLBatch(TypedDict, total=False):
    """One collated batch.

    Keys:
        image: ``(B, 3, H, W)`` float, normalised.
        label: ``(B,)`` int64 class index (for multi-label data: one positive class, see
            ``multi_hot``).
        multi_hot: ``(B, C)`` float multi-hot targets (multi-label datasets only).
        boxes: list of ``B`` int64 tensors ``(n_i, 4)``; ``n_i`` may be 0 (no box annotated). Not in
            train batches (training reads image labels only) unless the datamodule's ``train_targets``.
        mask: ``(B, H, W)`` uint8 with 1 = object, 0 = background, 255 = ignored; present only when
            every image of the batch has a mask (and, in train batches, only with ``train_targets``).
        semantic: ``(B, H, W)`` uint8 class-indexed mask (0 background, ``c + 1`` class ``c``, 255
            ignored) of multi-label segmentation data (VOC eval splits), for seed mIoU.
        index: ``(B,)`` int64 position of each sample in its dataset (for exports and de-duplication).
        image_id: list of ``B`` str identifiers (relative paths).
        orig_size: ``(B, 2)`` int64 original ``(width, height)`` of each image.
        num_skipped: int64 scalar, samples of this batch dropped as unreadable (``skip_bad``); a
            batch whose every sample was dropped holds only this key.
    """

    image: Tensor
    label: Tensor
    multi_hot: Tensor
    boxes: list[Tensor]
    mask: Tensor
    semantic: Tensor
    index: Tensor
    image_id: list[str]
    orig_size: Tensor
    num_skipped: Tensor


class WSOLPrediction(TypedDict, total=False):
    """What ``predict_step`` returns for a batch.

    Keys:
        logits: ``(B, C)`` class scores.
        pred_class: ``(B,)`` top-1 class.
        maps: ``(B, H, W)`` float localization maps of ``pred_class`` (or of the GT class when
            labels are known and ``use_gt_class`` is set), min-max normalised to [0, 1] at the image
            resolution.
        boxes: list of ``B`` int64 tensors ``(n_i, 4)`` predicted boxes at the operating threshold
            (one box per connected region, largest first).
        threshold: the operating threshold used (float in [0, 1]).
        index: ``(B,)`` dataset positions; image_id: list of ``B`` str.
    """

    logits: Tensor
    pred_class: Tensor
    maps: Tensor
    boxes: list[Tensor]
    threshold: float
    index: Tensor
    image_id: list[str]
