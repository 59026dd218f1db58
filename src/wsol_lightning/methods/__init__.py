"""WSOL methods as LightningModules: CAM, BAS, B-CAM, ORNet and the wsolevaluation baselines (HaS ... CutMix)."""

from wsol_lightning.methods.acol import ACoL
from wsol_lightning.methods.adl import ADL
from wsol_lightning.methods.bas import BAS
from wsol_lightning.methods.base import NonFiniteLossError, WSOLModule
from wsol_lightning.methods.bcam import BCAM
from wsol_lightning.methods.cam import CAM
from wsol_lightning.methods.cutmix import CutMix
from wsol_lightning.methods.has import HaS
from wsol_lightning.methods.ornet import ORNet
from wsol_lightning.methods.spg import SPG

__all__ = ["ACoL", "ADL", "BAS", "BCAM", "CAM", "CutMix", "HaS", "NonFiniteLossError", "ORNet", "SPG", "WSOLModule"]
