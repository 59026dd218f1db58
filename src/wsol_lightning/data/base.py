"""``WSOLDataModule``: the split/loader logic shared by every dataset."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from wsol_lightning.data import transforms as T
from wsol_lightning.data.collate import wsol_collate
from wsol_lightning.data.dataset import WSOLDataset
from wsol_lightning.data.index import DatasetIndex
from wsol_lightning.data.sampling import ResumableDataLoader

log = logging.getLogger(__name__)


class UnpaddedDistributedSampler(DistributedSampler):
    """Eval sampler: rank ``r`` gets indices ``r::world`` in order, nothing padded or repeated.

    It subclasses :class:`DistributedSampler` so Lightning keeps it instead of inserting its own
    padded sampler; metrics then never count a sample twice.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.total_size = len(dataset)  # type: ignore[arg-type]
        self.num_samples = len(range(self.rank, self.total_size, self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


def resolve_root(data_dir: str | Path, marker: str, *subdirs: str) -> Path:
    """Return ``data_dir`` if it holds ``marker``, else the first ``data_dir/<subdir>`` that does.

    Raises:
        FileNotFoundError: naming the file looked for in every place.

    """
    data_dir = Path(data_dir).expanduser()
    candidates = [data_dir, *(data_dir / s for s in subdirs)]
    for candidate in candidates:
        if (candidate / marker).exists():
            return candidate
    looked = ", ".join(str(c / marker) for c in candidates)
    raise FileNotFoundError(f"missing {marker}: looked for {looked}")


class WSOLDataModule(L.LightningDataModule):
    """Shared datamodule: builds the split indices, datasets and loaders.

    Subclasses implement :meth:`read_class_names` (cheap; ``num_classes`` must be known right after
    ``__init__`` for the CLI link) and :meth:`build_index` (``split`` in ``train``/``val``/``test``).

    Args:
        data_dir: dataset folder (as the official archive extracts it) or its parent.
        batch_size: samples per batch (per device).
        num_workers: DataLoader worker processes.
        image_size: side of the square network input (train crop / eval resize).
        resize_size: train resize side before the random crop (default ``round(image_size*256/224)``).
        skip_bad: skip (count and log) unreadable samples instead of raising.
        seed: seed of splits, shuffling and multi-label label choice.
        predict_split: split served by ``predict_dataloader``.
        pin_memory: DataLoader ``pin_memory``.

    """

    def __init__(
        self,
        data_dir: str | Path,
        batch_size: int = 32,
        num_workers: int = 4,
        image_size: int = 224,
        resize_size: int | None = None,
        skip_bad: bool = False,
        seed: int = 0,
        predict_split: str = "test",
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.resize_size = resize_size
        self.skip_bad = skip_bad
        self.seed = seed
        self.predict_split = predict_split
        self.pin_memory = pin_memory
        self._class_names: list[str] | None = None
        self.datasets: dict[str, WSOLDataset] = {}

    # -- to implement -------------------------------------------------------------------------
    def read_class_names(self) -> list[str]:
        """Return the class names (index = label); must be cheap."""
        raise NotImplementedError

    def build_index(self, split: str) -> DatasetIndex:
        """Return the index of ``split`` (``train``, ``val`` or ``test``)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Class names, index = label."""
        if self._class_names is None:
            self._class_names = list(self.read_class_names())
        return self._class_names

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def train_transform(self) -> Any:
        """Albumentations pipeline of the train split."""
        return T.train_transform(self.image_size, self.resize_size)

    def eval_transform(self) -> Any:
        """Albumentations pipeline of the val/test/predict splits."""
        return T.eval_transform(self.image_size)

    def make_dataset(self, split: str) -> WSOLDataset:
        """Build (and cache) the dataset of ``split``."""
        if split not in self.datasets:
            train = split == "train"
            index = self.build_index(split)
            transform = self.train_transform() if train else self.eval_transform()
            self.datasets[split] = WSOLDataset(
                index, transform, train=train, skip_bad=self.skip_bad, seed=self.seed
            )
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs."""
        splits = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": (self.predict_split,),
            None: ("train", "val", "test"),
        }[stage]
        for split in splits:
            self.make_dataset(split)

    def _eval_loader(self, split: str) -> DataLoader:
        """In-order loader of ``split``; under DDP each rank gets its share with nothing padded."""
        dataset = self.make_dataset(split)
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sampler = UnpaddedDistributedSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=wsol_collate,
            pin_memory=self.pin_memory,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled train loader, reproducible from ``seed`` and resumable mid-epoch."""
        return ResumableDataLoader(
            self.make_dataset("train"),
            progress=self._batches_trained_this_epoch,
            seed=self.seed,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=wsol_collate,
            pin_memory=self.pin_memory,
            drop_last=False,
            persistent_workers=self.num_workers > 0,
        )

    def _batches_trained_this_epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def val_dataloader(self) -> DataLoader:
        """Val loader (threshold selection split)."""
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test loader."""
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Loader of ``predict_split``."""
        return self._eval_loader(self.predict_split)
