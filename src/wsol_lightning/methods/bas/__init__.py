"""BAS: Background Activation Suppression (Wu et al., CVPR 2022; Zhai et al., IJCV 2024)."""

from wsol_lightning.methods.bas.model import BASNet
from wsol_lightning.methods.bas.module import BAS

__all__ = ["BAS", "BASNet"]
