"""B-CAM: background-aware classification activation maps (Zhu et al., arXiv:2112.14379, TPAMI 2023)."""

from wsol_lightning.methods.bcam.loss import stagger_loss, stagger_targets
from wsol_lightning.methods.bcam.metric import MaskAccuracy
from wsol_lightning.methods.bcam.model import BCAMHead, BCAMNet
from wsol_lightning.methods.bcam.module import BCAM

__all__ = ["BCAM", "BCAMHead", "BCAMNet", "MaskAccuracy", "stagger_loss", "stagger_targets"]
