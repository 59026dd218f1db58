"""CAM: class activation mapping (Zhou et al., CVPR 2016), the baseline every WSOL method is measured against."""

from wsol_lightning.methods.cam.model import CAMNet
from wsol_lightning.methods.cam.module import CAM

__all__ = ["CAM", "CAMNet"]
