"""CutMix (Yun et al., ICCV 2019), a wsolevaluation baseline: CAM trained on box-mixed images."""

from wsol_lightning.methods.cutmix.loss import mixed_cross_entropy
from wsol_lightning.methods.cutmix.model import CutMixDraws, cut_and_mix, cutmix_box, draw_cutmix
from wsol_lightning.methods.cutmix.module import CutMix

__all__ = ["CutMix", "CutMixDraws", "cut_and_mix", "cutmix_box", "draw_cutmix", "mixed_cross_entropy"]
