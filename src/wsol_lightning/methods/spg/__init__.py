"""SPG: self-produced guidance (Zhang et al., ECCV 2018), the wsolevaluation baseline."""

from wsol_lightning.methods.spg.module import SPG

__all__ = ["SPG"]
