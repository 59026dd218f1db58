"""Seeded sample choices: the stratified val holdout and a reproducible, resumable train loader.

Reproducible: epoch ``e`` visits a permutation drawn from ``(seed, e)`` only, and each sample's
augmentation is seeded by ``(seed, e, index)``, so the same seed gives the same batches whatever the
number of workers. Resumable: :class:`ResumableDataLoader` implements ``state_dict`` /
``load_state_dict``, which Lightning saves in checkpoints and restores on ``--ckpt_path``; a run
killed mid-epoch continues with exactly the batches it had not trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of sample ``index`` in ``epoch`` (a 32-bit int)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def stratified_holdout(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Bool mask choosing ``per_class`` positions per label (never a class's last sample)."""
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(per_class, len(members) - 1)
        if k > 0:
            chosen[rng.choice(members, size=k, replace=False)] = True
    return chosen


class ResumableRandomSampler(DistributedSampler):
    """Shuffles per epoch from ``(seed, epoch)`` and yields ``(index, augmentation_seed)`` pairs.

    Subclasses :class:`DistributedSampler` (rank ``r`` takes every ``world``-th position of the padded
    permutation) so Lightning keeps it under DDP instead of wrapping it. ``skip`` positions of the
    current epoch are dropped once, to resume mid-epoch (``len`` stays the full epoch, as Lightning's loop
    counts the batches already trained).

    Args:
        dataset: the train dataset.
        seed: base seed of the permutation and of the augmentations.

    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        world = dist.get_world_size() if distributed else 1
        rank = dist.get_rank() if distributed else 0
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator).tolist()  # type: ignore[arg-type]
        padding = self.total_size - len(order)
        order += (order * (padding // max(len(order), 1) + 1))[:padding]
        mine = order[self.rank : self.total_size : self.num_replicas]
        start, self.skip = self.skip, 0
        for index in mine[start:]:
            yield index, sample_seed(self.seed, self.epoch, index)


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in Lightning checkpoints.

    Args:
        dataset: the train dataset.
        progress: returns the number of batches of the current epoch already trained (the datamodule
            reads it from its trainer); saved by :meth:`state_dict`.
        seed: base seed of :class:`ResumableRandomSampler`.
        **kwargs: DataLoader arguments (not ``shuffle``/``sampler``).

    """

    def __init__(self, dataset: Dataset, progress: Callable[[], int] | None = None, seed: int = 0,
                 **kwargs: Any) -> None:
        kwargs.pop("shuffle", None)
        sampler = kwargs.pop("sampler", None)
        if not isinstance(sampler, ResumableRandomSampler):
            sampler = ResumableRandomSampler(dataset, seed=seed)
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.progress = progress
        self.seed = seed

    def state_dict(self) -> dict[str, int]:
        """Epoch and number of batches of it already trained."""
        done = int(self.progress()) if self.progress is not None else 0
        return {"epoch": int(self.sampler.epoch), "batches_done": done, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: the next iteration skips the batches of ``state["epoch"]`` already trained."""
        self.sampler.set_epoch(int(state["epoch"]))
        self.sampler.skip = min(int(state["batches_done"]) * int(self.batch_size or 1), self.sampler.num_samples)
