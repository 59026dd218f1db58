"""Datamodules, the generic dataset and the transforms of wsol_lightning."""

import wsol_lightning  # noqa: F401  (sets NO_ALBUMENTATIONS_UPDATE before albumentations loads)
from wsol_lightning.data.base import UnpaddedDistributedSampler, WSOLDataModule
from wsol_lightning.data.collate import wsol_collate
from wsol_lightning.data.cub import CUBDataModule
from wsol_lightning.data.dataset import WSOLDataset
from wsol_lightning.data.index import DataError, DatasetIndex
from wsol_lightning.data.synthetic import SyntheticDataModule

__all__ = [
    "CUBDataModule",
    "DataError",
    "DatasetIndex",
    "SyntheticDataModule",
    "UnpaddedDistributedSampler",
    "WSOLDataModule",
    "WSOLDataset",
    "wsol_collate",
]
