"""Datamodules, the generic dataset and the transforms of wsol_lightning."""

import wsol_lightning  # noqa: F401  (sets NO_ALBUMENTATIONS_UPDATE before albumentations loads)
from wsol_lightning.data.base import UnpaddedDistributedSampler, WSOLDataModule
from wsol_lightning.data.coco import COCODataModule
from wsol_lightning.data.collate import wsol_collate
from wsol_lightning.data.cub import CUBDataModule
from wsol_lightning.data.dataset import WSOLDataset
from wsol_lightning.data.folder import ImageFolderDataModule
from wsol_lightning.data.imagenet import ImageNetDataModule
from wsol_lightning.data.index import DataError, DatasetIndex
from wsol_lightning.data.openimages import OpenImagesDataModule
from wsol_lightning.data.pets import OxfordPetsDataModule
from wsol_lightning.data.synthetic import SyntheticDataModule
from wsol_lightning.data.synthetic_clutter import ClutterSyntheticDataModule
from wsol_lightning.data.voc import VOCDataModule

__all__ = [
    "ClutterSyntheticDataModule",
    "COCODataModule",
    "CUBDataModule",
    "DataError",
    "DatasetIndex",
    "ImageFolderDataModule",
    "ImageNetDataModule",
    "OpenImagesDataModule",
    "OxfordPetsDataModule",
    "SyntheticDataModule",
    "UnpaddedDistributedSampler",
    "VOCDataModule",
    "WSOLDataModule",
    "WSOLDataset",
    "wsol_collate",
]
