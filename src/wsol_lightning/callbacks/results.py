"""Per-image results of a whole eval split (class, score, IoU, hit at the operating threshold) for result tables.

:class:`~wsol_lightning.callbacks.MapVisualizer` draws a few images, but its W&B results table holds a row for
every image of the split: :func:`evaluate_split` runs the module over the split once more, after the epoch, at the
operating threshold chosen on val (known only then), in a plain sequential loader over the dataset (every image
once, also under DDP, where only rank 0 logs).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from wsol_lightning.callbacks import render
from wsol_lightning.callbacks.tiles import Tile, tiles_from_batch
from wsol_lightning.data.collate import is_empty_batch


def sequential_loader(loader: DataLoader) -> DataLoader:
    """A loader over ``loader.dataset`` in order, without a distributed sampler, with the same batching."""
    return DataLoader(loader.dataset, batch_size=loader.batch_size or 1, shuffle=False,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=False, persistent_workers=False)


@torch.no_grad()
def evaluate_split(pl_module: L.LightningModule, loader: DataLoader, threshold: float,
                   names: Sequence[str] = ()) -> Iterator[tuple[int, Tile]]:
    """``(dataset position, tile)`` of every image of ``loader``'s dataset, evaluated at ``threshold``.

    The module runs in eval mode (restored afterwards); tiles come from
    :func:`~wsol_lightning.callbacks.tiles.tiles_from_batch` (network frame, the GT class's map). Keep only what
    you need of each tile: a tile holds its image and map.

    Args:
        pl_module: a module with ``evaluation_maps(batch) -> (logits, maps)``.
        loader: the split's loader (its dataset, batch size, workers and collate function are used).
        threshold: operating threshold.
        names: class names.

    """
    was_training = pl_module.training
    pl_module.eval()
    try:
        for batch in sequential_loader(loader):
            if batch is None or is_empty_batch(batch):
                continue
            positions = batch["index"].tolist()
            batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
            logits, maps = pl_module.evaluation_maps(batch)
            tiles = tiles_from_batch(render.denormalize(batch["image"]), maps, logits, batch["label"],
                                     batch.get("boxes"), batch.get("mask"), threshold, names, batch.get("image_id"))
            yield from zip(positions, tiles)
    finally:
        pl_module.train(was_training)


def table_rows(rows: Iterator[tuple[int, Tile]], shown: dict[int, tuple[Tile, Any]],
               row: Any) -> list[list[Any]]:
    """Rows of a results table ordered by dataset position; shown images keep their own tile and picture.

    Args:
        rows: ``(position, tile)`` of every image (e.g. :func:`evaluate_split`).
        shown: ``{position: (tile, picture)}`` of the visualised images: their rows use that tile (the one the
            picture and caption show) and carry the picture; every other row has no picture.
        row: ``row(tile, picture_or_None) -> list`` (``wandb_media.result_row``).

    """
    out: dict[int, list[Any]] = {}
    for position, tile in rows:
        if position not in shown:
            out[position] = row(tile, None)
    for position, (tile, picture) in shown.items():
        out[position] = row(tile, picture)
    return [out[p] for p in sorted(out)]
