"""WSOL methods as LightningModules: CAM, BAS, B-CAM and ORNet."""

from wsol_lightning.methods.bas import BAS
from wsol_lightning.methods.base import NonFiniteLossError, WSOLModule
from wsol_lightning.methods.bcam import BCAM
from wsol_lightning.methods.cam import CAM
from wsol_lightning.methods.ornet import ORNet

__all__ = ["BAS", "BCAM", "CAM", "NonFiniteLossError", "ORNet", "WSOLModule"]
