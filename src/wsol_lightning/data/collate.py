"""Collate samples into a :class:`~wsol_lightning.types.WSOLBatch` dict."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from wsol_lightning.data.index import DataError


def is_empty_batch(batch: dict[str, Any]) -> bool:
    """Whether every sample of ``batch`` was skipped (it then holds only ``num_skipped``)."""
    return "image" not in batch


def wsol_collate(samples: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Collate WSOL samples, dropping ``None`` (skipped bad samples) and counting them.

    ``image``, ``label``, ``multi_hot``, ``index`` and ``orig_size`` are stacked; ``boxes`` stays a
    list of ``(n_i, 4)`` tensors (absent when the samples have none: train samples read without
    targets); ``image_id`` a list of str; ``mask`` is stacked only when every sample has one, and so is
    ``semantic`` (class-indexed masks of VOC's eval splits).
    ``num_skipped`` (int64 scalar) counts the ``None`` samples, so skips made in DataLoader worker
    processes reach the main process with the batch.

    Returns:
        The batch dict; ``{"num_skipped": n}`` alone when every sample was skipped
        (:func:`is_empty_batch`).

    """
    kept = [s for s in samples if s is not None]
    num_skipped = torch.tensor(len(samples) - len(kept), dtype=torch.int64)
    if not kept:
        return {"num_skipped": num_skipped}
    batch: dict[str, Any] = {
        "image": torch.stack([s["image"] for s in kept]),
        "label": torch.stack([s["label"] for s in kept]),
        "index": torch.stack([s["index"] for s in kept]),
        "image_id": [s["image_id"] for s in kept],
        "orig_size": torch.stack([s["orig_size"] for s in kept]),
    }
    if all("boxes" in s for s in kept):
        batch["boxes"] = [s["boxes"] for s in kept]
    if all("multi_hot" in s for s in kept):
        batch["multi_hot"] = torch.stack([s["multi_hot"] for s in kept])
    for key in ("mask", "semantic"):
        if all(key in s for s in kept):
            batch[key] = torch.stack([s[key] for s in kept])
    batch["num_skipped"] = num_skipped
    return batch


def merge_empty_batches(batches: Iterable[dict[str, Any]], source: str = "") -> Iterator[dict[str, Any]]:
    """Yield the non-empty batches; the skip count of an all-skipped batch moves to a neighbour.

    Each batch is held until the next non-empty one arrives, so the count of trailing all-skipped
    batches is added to the last batch instead of being lost.

    Raises:
        DataError: every sample of every batch was skipped (nothing to evaluate in ``source``).

    """
    held: dict[str, Any] | None = None
    pending = 0
    for batch in batches:
        if is_empty_batch(batch):
            if held is None:
                pending += int(batch["num_skipped"])
            else:
                held["num_skipped"] = held["num_skipped"] + batch["num_skipped"]
            continue
        if held is not None:
            yield held
        if pending:
            batch["num_skipped"] = batch["num_skipped"] + pending
            pending = 0
        held = batch
    if held is not None:
        yield held
    elif pending:
        raise DataError(f"every sample was skipped as unreadable ({pending} of them, skip_bad=True): {source}")
