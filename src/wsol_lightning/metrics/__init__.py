"""Localisation metrics: wsolevaluation-exact MaxBoxAcc (V1/V2) and PxAP/PIoU, seed mIoU, and the legacy protocol."""

from wsol_lightning.metrics import functional
from wsol_lightning.metrics.box import MaxBoxAcc
from wsol_lightning.metrics.legacy import LegacyBoxAccuracy, legacy_crop_boxes
from wsol_lightning.metrics.pixel import PxAP
from wsol_lightning.metrics.segmentation import SeedMIoU

__all__ = ["MaxBoxAcc", "PxAP", "SeedMIoU", "LegacyBoxAccuracy", "legacy_crop_boxes", "functional"]
