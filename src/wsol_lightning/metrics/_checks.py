"""Input validation shared by the metrics: every error names the problem and the image index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

ArrayLike = Tensor | np.ndarray


def to_numpy(x: ArrayLike | Sequence) -> np.ndarray:
    """Return a CPU numpy view/copy of a tensor, array or nested sequence."""
    if isinstance(x, Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return np.asarray(x)


def check_maps(cams: ArrayLike, name: str = "cams") -> np.ndarray:
    """Validate score maps ``(B, H, W)``: floating, finite, within [0, 1].

    Args:
        cams: ``(B, H, W)`` float tensor or array.
        name: argument name used in error messages.

    Returns:
        The maps as a numpy array ``(B, H, W)`` (dtype kept).

    Raises:
        ValueError: wrong rank or dtype, a NaN/infinite value, or a value outside [0, 1], naming the
            index of the first offending image.

    """
    arr = to_numpy(cams)
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape (B, H, W); got shape {tuple(arr.shape)}.")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be floating point maps in [0, 1]; got dtype {arr.dtype}.")
    flat = arr.reshape(arr.shape[0], -1)
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
        index = int(np.argmin(finite))
        raise ValueError(
            f"{name}[{index}] contains NaN or infinite values; normalise maps first with "
            "wsol_lightning.metrics.functional.normalize_maps (a NaN or constant map becomes zeros)."
        )
    if flat.size:
        inside = (flat.min(axis=1) >= 0) & (flat.max(axis=1) <= 1)
        if not inside.all():
            index = int(np.argmin(inside))
            raise ValueError(
                f"{name}[{index}] has values outside [0, 1] (min {flat[index].min()}, max "
                f"{flat[index].max()}); min-max normalise maps first (functional.normalize_maps)."
            )
    return arr


def check_boxes(boxes: Sequence[ArrayLike], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-image GT boxes and concatenate them.

    Args:
        boxes: ``B`` integer tensors/arrays ``(n_i, 4)``, ``x0, y0, x1, y1`` inclusive, ``n_i >= 1``.
        batch_size: expected ``B``.

    Returns:
        ``(M, 4)`` int64 boxes of the whole batch and ``(B + 1,)`` int64 offsets.

    Raises:
        ValueError: wrong count or shape, an image without boxes, non-integer, negative coordinates
            or ``x1 < x0`` / ``y1 < y0``, naming the image index.

    """
    if isinstance(boxes, Tensor) and boxes.ndim == 3:
        boxes = list(boxes)
    if len(boxes) != batch_size:
        raise ValueError(f"boxes must hold one (n_i, 4) tensor per map: {len(boxes)} for {batch_size} maps.")
    parts = []
    offsets = np.zeros(batch_size + 1, np.int64)
    for i, b in enumerate(boxes):
        arr = to_numpy(b)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"boxes[{i}] must have shape (n, 4); got {tuple(arr.shape)}.")
        if arr.shape[0] == 0:
            raise ValueError(
                f"boxes[{i}] is empty: an image without GT boxes cannot be scored by MaxBoxAcc; "
                "leave it out of the update."
            )
        if not np.issubdtype(arr.dtype, np.integer):
            if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
                raise ValueError(f"boxes[{i}] must hold integer pixel coordinates; got {arr.tolist()}.")
        arr = arr.astype(np.int64)
        if (arr < 0).any():
            raise ValueError(f"boxes[{i}] has negative coordinates: {arr.tolist()}.")
        if (arr[:, 2] < arr[:, 0]).any() or (arr[:, 3] < arr[:, 1]).any():
            raise ValueError(f"boxes[{i}] must be x0, y0, x1, y1 with x1 >= x0, y1 >= y0: {arr.tolist()}.")
        parts.append(arr)
        offsets[i + 1] = offsets[i] + arr.shape[0]
    gt = np.concatenate(parts) if parts else np.zeros((0, 4), np.int64)
    return np.ascontiguousarray(gt), offsets


def check_flags(flags: ArrayLike | None, batch_size: int, name: str) -> np.ndarray | None:
    """Validate an optional ``(B,)`` boolean flag vector (e.g. ``top1_correct``)."""
    if flags is None:
        return None
    arr = to_numpy(flags)
    if arr.shape != (batch_size,):
        raise ValueError(f"{name} must have shape ({batch_size},); got {tuple(arr.shape)}.")
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be boolean; got values {np.unique(arr).tolist()}.")
        arr = arr.astype(bool)
    return arr


def check_masks(masks: ArrayLike | Sequence[ArrayLike], maps: np.ndarray) -> np.ndarray:
    """Validate GT masks against maps ``(B, H, W)``: same shape, values in {0, 1, 255}.

    Returns:
        ``(B, H, W)`` uint8 masks.

    Raises:
        ValueError: a count or shape mismatch or an unexpected value, naming the image index.

    """
    if isinstance(masks, (Tensor, np.ndarray)) and to_numpy(masks).ndim == 3:
        items = list(to_numpy(masks))
    else:
        items = [to_numpy(m) for m in masks]
    if len(items) != maps.shape[0]:
        raise ValueError(f"masks must hold one mask per map: got {len(items)} for {maps.shape[0]} maps.")
    for i, m in enumerate(items):
        if m.shape != maps.shape[1:]:
            raise ValueError(f"masks[{i}] has shape {tuple(m.shape)}, its map {tuple(maps.shape[1:])}.")
        bad = ~np.isin(m, (0, 1, 255))
        if bad.any():
            raise ValueError(
                f"masks[{i}] must hold 0 (background), 1 (object) or 255 (ignored); found "
                f"{np.unique(m[bad]).tolist()[:5]}."
            )
    return np.stack(items).astype(np.uint8) if items else np.zeros((0,) + maps.shape[1:], np.uint8)


def as_tensor(x: np.ndarray | float, like: Tensor | None = None) -> Tensor:
    """Return a float64 tensor on ``like``'s device (CPU when ``like`` is None)."""
    device = like.device if like is not None else None
    return torch.as_tensor(np.asarray(x, dtype=np.float64), device=device)
