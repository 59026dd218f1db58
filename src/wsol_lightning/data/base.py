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
from wsol_lightning.data.collate import merge_empty_batches, wsol_collate
from wsol_lightning.data.dataset import WSOLDataset
from wsol_lightning.data.index import DataError, DatasetIndex
from wsol_lightning.data.sampling import ResumableDataLoader
from wsol_lightning.data.validation import ValidationReport, validate_index

log = logging.getLogger(__name__)

#: Smallest ``image_size``: the backbones downsample by 32 (some need more, e.g. InceptionV3 75).
MIN_IMAGE_SIZE = 32
SPLITS = ("train", "val", "test")


class EvalDataLoader(DataLoader):
    """In-order loader whose batches are never empty.

    An all-skipped batch (``skip_bad``) is not yielded; its ``num_skipped`` count travels with a
    neighbouring batch (see :func:`~wsol_lightning.data.collate.merge_empty_batches`).
    """

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        source = getattr(getattr(self.dataset, "index", None), "source", "")
        return merge_empty_batches(super().__iter__(), source)


def check_sizes(image_size: Any, resize_size: Any, batch_size: Any, num_workers: Any) -> None:
    """Refuse input sizes and loader settings the pipeline cannot run, naming the argument.

    Raises:
        ValueError: ``image_size`` below :data:`MIN_IMAGE_SIZE` or not an int, ``resize_size`` below
            ``image_size``, ``batch_size < 1``, ``num_workers < 0``.

    """
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not is_int(image_size) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be an integer >= {MIN_IMAGE_SIZE} (the backbones downsample by 32; "
            f"InceptionV3 needs >= 75), got {image_size!r}"
        )
    if resize_size is not None and (not is_int(resize_size) or resize_size < image_size):
        raise ValueError(f"resize_size must be an integer >= image_size ({image_size}), got {resize_size!r}")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not is_int(num_workers) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")


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

    :meth:`setup` validates up front, before any training step: for ``fit`` it parses every split
    (train, val and test when its files exist), checks every path and every box against its image
    (:func:`~wsol_lightning.data.validation.validate_index`) and refuses an empty split that the
    stage needs; other stages check the splits they use. Bad lines raise
    :class:`~wsol_lightning.data.index.DataError` naming ``file:line: field``.

    Args:
        data_dir: dataset folder (as the official archive extracts it) or its parent.
        batch_size: samples per batch (per device).
        num_workers: DataLoader worker processes.
        image_size: side of the square network input (train crop / eval resize); at least
            :data:`MIN_IMAGE_SIZE` (32).
        resize_size: train resize side before the random crop (default ``round(image_size*256/224)``).
        skip_bad: skip unreadable samples instead of raising; each batch carries its count
            (``num_skipped``, summed into ``{stage}/num_skipped``). An all-skipped eval batch is merged
            into a neighbour; an all-skipped train batch is stepped over (single process: under DDP the
            other ranks would wait for its gradients).
        seed: seed of splits, shuffling and multi-label label choice.
        predict_split: split served by ``predict_dataloader``.
        pin_memory: DataLoader ``pin_memory``.
        train_decode_draft: decode training JPEGs at reduced size (libjpeg's 1/2, 1/4, 1/8 scaling) when
            the result still covers the train resize side (faster decoding of large photos, never an
            upsampling; :func:`~wsol_lightning.data.dataset.read_image_reduced`). Evaluation always
            decodes at full size (wsolevaluation-exact). ``False``: full-size decoding everywhere.
        train_targets: read the boxes and masks of training samples too (train batches then carry ``boxes``
            and ``mask``). Off by default: WSOL trains on image labels only and nothing in the library's
            training reads them, so the train split never opens a mask file. Turn it on for a custom method or
            callback that uses them in training.
        eval_mask_cache_mb: keep each val/test/predict sample's resized mask after its first read, up to this
            many MB per split (bit-packed, ~12 KB per 224 px trimap; checked against each mask file's mtime
            and size on every read: :class:`~wsol_lightning.data.mask_cache.MaskCache`), so per-epoch
            validation decodes each mask once. With ``num_workers > 0`` the eval loaders then keep their
            workers alive between epochs (``persistent_workers``), where the cache lives. 0: no cache.

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
        train_decode_draft: bool = True,
        train_targets: bool = False,
        eval_mask_cache_mb: float = 256,
    ) -> None:
        super().__init__()
        check_sizes(image_size, resize_size, batch_size, num_workers)
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.image_size = image_size
        self.resize_size = resize_size
        self.skip_bad = skip_bad
        self.seed = seed
        self.predict_split = predict_split
        self.pin_memory = pin_memory
        self.train_decode_draft = train_decode_draft
        self.train_targets = train_targets
        if eval_mask_cache_mb < 0:
            raise ValueError(f"eval_mask_cache_mb must be >= 0, got {eval_mask_cache_mb!r}")
        self.eval_mask_cache_mb = eval_mask_cache_mb
        self._class_names: list[str] | None = None
        self.datasets: dict[str, WSOLDataset] = {}
        self.indices: dict[str, DatasetIndex] = {}

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
        """Albumentations pipeline of the train split (box-aware with ``train_targets``)."""
        return T.train_transform(self.image_size, self.resize_size, boxes=self.train_targets)

    def eval_transform(self) -> Any:
        """Albumentations pipeline of the val/test/predict splits."""
        return T.eval_transform(self.image_size)

    def index(self, split: str) -> DatasetIndex:
        """The validated index of ``split`` (built and checked once, then cached).

        Raises:
            DataError: a bad line, path or box (``file:line: field: ...``).

        """
        if split not in self.indices:
            index = self.build_index(split)
            report_validation(split, validate_index(index, skip_bad=self.skip_bad))
            self.indices[split] = index
        return self.indices[split]

    def make_dataset(self, split: str) -> WSOLDataset:
        """Build (and cache) the dataset of ``split``."""
        if split not in self.datasets:
            train = split == "train"
            index = self.index(split)
            transform = self.train_transform() if train else self.eval_transform()
            side = self.resize_size or T.default_resize(self.image_size)
            draft = (side, side) if train and self.train_decode_draft else None
            self.datasets[split] = WSOLDataset(
                index, transform, train=train, skip_bad=self.skip_bad, seed=self.seed, draft_size=draft,
                targets=self.train_targets or not train, mask_cache_bytes=int(self.eval_mask_cache_mb * 2**20),
            )
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Parse and validate the splits the stage needs (every split for ``fit``), then build them.

        Raises:
            DataError: bad data anywhere in those splits, or an empty split the stage needs (named
                with the file that lists it).

        """
        needed = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": (self.predict_split,),
            None: SPLITS,
        }[stage]
        if stage == "fit":  # find a bad test line now, not after the whole fit
            for split in SPLITS:
                if split not in needed:
                    try:
                        self.index(split)
                    except FileNotFoundError as err:
                        log.info("%s split not checked before fit: %s", split, err)
        for split in needed:
            why = " (the operating threshold is chosen on val)" if split == "val" else ""
            self.require_nonempty(split, f"the '{stage or 'all'}' stage needs it{why}")
            self.make_dataset(split)

    def require_nonempty(self, split: str, reason: str) -> None:
        """Raise :class:`DataError` naming ``split``, its file and ``reason`` when it has no sample."""
        index = self.index(split)
        if not len(index):
            raise DataError(f"the {split} split is empty: {self.split_source(split)} lists no image, and {reason}")

    def split_source(self, split: str) -> str:
        """The file that decides which images ``split`` holds (named when it is empty)."""
        return self.index(split).source or str(self.data_dir)

    def _eval_loader(self, split: str) -> DataLoader:
        """In-order loader of ``split``; under DDP each rank gets its share with nothing padded."""
        dataset = self.make_dataset(split)
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sampler = UnpaddedDistributedSampler(dataset)
        return EvalDataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=wsol_collate,
            pin_memory=self.pin_memory,
            drop_last=False,
            persistent_workers=self.num_workers > 0 and self.eval_mask_cache_mb > 0,  # the mask cache lives there
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
        """Val loader (threshold selection split); an empty val split raises, naming its file."""
        self.require_nonempty(
            "val", "the operating threshold is chosen on it (or give model.operating_threshold explicitly)"
        )
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test loader; an empty test split raises, naming its file."""
        self.require_nonempty("test", "testing needs it")
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Loader of ``predict_split``."""
        return self._eval_loader(self.predict_split)


def report_validation(split: str, report: ValidationReport) -> None:
    """Warn (once, on rank 0) about what validation tolerated: clipped boxes, unreadable images."""
    from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

    if report.clipped:
        rank_zero_warn(
            f"{split}: clipped {report.clipped} box(es) overflowing their image by "
            f"<= 1 px (float rounding) to [0, W-1] x [0, H-1]; first at {report.first_clipped}"
        )
    if report.unreadable:
        rank_zero_warn(
            f"{split}: {len(report.unreadable)} image(s) with boxes could not be opened and will be "
            f"skipped (skip_bad=True), e.g. {report.unreadable[0]}"
        )
    if report.sizes_read:
        rank_zero_info(f"{split}: read {report.sizes_read} image headers to check boxes against image sizes")
