"""Collate samples into a :class:`~wsol_lightning.types.WSOLBatch` dict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def wsol_collate(samples: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Collate WSOL samples, dropping ``None`` (skipped bad samples).

    ``image``, ``label``, ``multi_hot``, ``index`` and ``orig_size`` are stacked; ``boxes`` stays a
    list of ``(n_i, 4)`` tensors; ``image_id`` a list of str; ``mask`` is stacked only when every
    sample has one, and so is ``semantic`` (class-indexed masks of VOC's eval splits).

    Returns:
        The batch dict, or ``None`` when every sample was skipped.

    """
    kept = [s for s in samples if s is not None]
    if not kept:
        return None
    batch: dict[str, Any] = {
        "image": torch.stack([s["image"] for s in kept]),
        "label": torch.stack([s["label"] for s in kept]),
        "boxes": [s["boxes"] for s in kept],
        "index": torch.stack([s["index"] for s in kept]),
        "image_id": [s["image_id"] for s in kept],
        "orig_size": torch.stack([s["orig_size"] for s in kept]),
    }
    if all("multi_hot" in s for s in kept):
        batch["multi_hot"] = torch.stack([s["multi_hot"] for s in kept])
    for key in ("mask", "semantic"):
        if all(key in s for s in kept):
            batch[key] = torch.stack([s[key] for s in kept])
    return batch
