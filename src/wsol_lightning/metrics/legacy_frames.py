"""GT boxes in the papers' legacy eval frame: resize to ``resize`` x ``resize``, centre crop ``crop``.

Each paper's loader maps the boxes with its own arithmetic, reproduced here operation for operation so that
IoU = 0.5 decisions come out as in the paper (``tests/parity/test_legacy_parity.py`` compares with the official
loaders on seeded boxes):

* ``bas_cvpr`` (BAS ``BAS_inference.py`` with ``utils/augment.py``): ``v = x * (resize / W)``; the crop
  intersection ``x0 = max(s, v0)``, ``x1 = min(s + crop, v2)`` with ``s = round((resize - crop) / 2)``; then
  ``(v - s) / crop * crop`` (normalised, then scaled back). Floats; ``x0`` is never clipped above nor ``x1``
  below. The ILSVRC script maps only the FIRST GT box (later boxes stay in the original frame, times 224, so
  they are never matched): pass ``boxes[:1]`` to reproduce its numbers.
* ``bas_ijcv`` (BAS-Extension ``DataLoader/*.load_test_bbox``): ``int(max(x0 / W * resize - s, 0))`` and
  ``int(min(x1 / W * resize - s, crop - 1))`` with ``s = (resize - crop) // 2``.
* ``ornet`` (ORNet ``dataset/cub.py``): ``x * (256 / W) - 16`` in float32, not clipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wsol_lightning.metrics._checks import ArrayLike, to_numpy


def _bas_cvpr(b: np.ndarray, w: float, h: float, resize: int, crop: int) -> np.ndarray:
    shift = int(round((resize - crop) / 2.0))
    out = np.empty_like(b)
    for i, (x0, y0, x1, y1) in enumerate(b.tolist()):
        v0, v1, v2, v3 = x0 * (resize / w), y0 * (resize / h), x1 * (resize / w), y1 * (resize / h)
        v0, v1, v2, v3 = max(shift, v0), max(shift, v1), min(shift + crop, v2), min(shift + crop, v3)
        out[i] = [(v0 - shift) / crop * crop, (v1 - shift) / crop * crop, (v2 - shift) / crop * crop,
                  (v3 - shift) / crop * crop]
    return out


def _bas_ijcv(b: np.ndarray, w: float, h: float, resize: int, crop: int) -> np.ndarray:
    shift = (resize - crop) // 2.0
    out = np.empty(b.shape, np.int64)
    for i, (x0, y0, x1, y1) in enumerate(b.tolist()):
        out[i] = [int(max(x0 / w * resize - shift, 0)), int(max(y0 / h * resize - shift, 0)),
                  int(min(x1 / w * resize - shift, crop - 1)), int(min(y1 / h * resize - shift, crop - 1))]
    return out


def _ornet(b: np.ndarray, w: float, h: float, resize: int, crop: int) -> np.ndarray:
    f = np.float32
    scale = np.array([resize / w, resize / h, resize / w, resize / h]).astype(f)
    return b.astype(f) * scale - f((resize - crop) / 2)


_FRAMES = {"bas_cvpr": _bas_cvpr, "bas": _bas_cvpr, "bas_ijcv": _bas_ijcv, "ornet": _ornet}


def legacy_crop_boxes(boxes: ArrayLike, orig_wh: Sequence[float], resize: int = 256, crop: int = 224,
                      clip: str = "int", legacy: str | None = None) -> np.ndarray:
    """Map GT boxes into the resize-``resize``-square / centre-crop-``crop`` frame.

    With ``legacy`` (``"bas"``/``"bas_cvpr"``, ``"bas_ijcv"``, ``"ornet"``) the paper's own arithmetic (module
    docstring). Without it, ``x -> x * resize / W - (resize - crop) / 2`` (same for y with H), then
    ``clip="int"`` truncates to int and clips to ``[0, crop - 1]``, ``"float"`` clips to ``[0, crop]``,
    ``"none"`` leaves the shifted floats.

    Args:
        boxes: ``(n, 4)`` boxes ``x0, y0, x1, y1`` in the original image.
        orig_wh: original ``(width, height)``.
        resize: side of the square resize.
        crop: side of the centre crop.
        clip: ``"int"``, ``"float"`` or ``"none"`` (ignored when ``legacy`` is given).
        legacy: a paper's loader to reproduce, or ``None``.

    Returns:
        ``(n, 4)`` boxes: int64 for ``clip="int"`` / ``bas_ijcv``, float32 for ``ornet``, float64 otherwise.

    """
    b = to_numpy(boxes).astype(np.float64).reshape(-1, 4)
    w, h = map(float, orig_wh)
    if legacy is not None:
        if legacy not in _FRAMES:
            raise ValueError(f"legacy must be one of {sorted(_FRAMES)} or None; got {legacy!r}.")
        return _FRAMES[legacy](b, w, h, resize, crop)
    shift = (resize - crop) / 2
    out = b * np.array([resize / w, resize / h, resize / w, resize / h]) - shift
    if clip == "int":
        return np.clip(out.astype(np.int64), 0, crop - 1)
    if clip == "float":
        return np.clip(out, 0, crop)
    if clip == "none":
        return out
    raise ValueError(f"clip must be 'int', 'float' or 'none'; got {clip!r}.")
