"""Localisation metrics: wsolevaluation-exact MaxBoxAcc (V1/V2) and PxAP/PIoU, plus the legacy protocol."""

from wsol_lightning.metrics import functional
from wsol_lightning.metrics.box import MaxBoxAcc
from wsol_lightning.metrics.legacy import LegacyBoxAccuracy, legacy_crop_boxes
from wsol_lightning.metrics.pixel import PxAP

__all__ = ["MaxBoxAcc", "PxAP", "LegacyBoxAccuracy", "legacy_crop_boxes", "functional"]
