"""ACoL: adversarial complementary learning (Zhang et al., CVPR 2018), the wsolevaluation baseline."""

from wsol_lightning.methods.acol.module import ACoL

__all__ = ["ACoL"]
