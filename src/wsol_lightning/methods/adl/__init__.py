"""ADL: the attention-based dropout layer (Choe & Shim, CVPR 2019), a wsolevaluation baseline."""

from wsol_lightning.methods.adl.model import ADL_POSITIONS, AttentionDropout, attention_dropout, insert_adl
from wsol_lightning.methods.adl.module import ADL

__all__ = ["ADL", "ADL_POSITIONS", "AttentionDropout", "attention_dropout", "insert_adl"]
