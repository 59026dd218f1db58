"""ORNet: online refinement of a low-level-feature activation map (Xie et al., ICCV 2021)."""

from wsol_lightning.methods.ornet.erasing import ErasingResult, attentive_erase
from wsol_lightning.methods.ornet.handoff import PhaseCheckpointError
from wsol_lightning.methods.ornet.model import (
    LOW_LEVEL_TAPS,
    CoarseNet,
    EvaluatorNet,
    LowLevelTap,
    RefineNet,
    UNetDecoder,
)
from wsol_lightning.methods.ornet.module import ORNet

__all__ = [
    "LOW_LEVEL_TAPS",
    "CoarseNet",
    "ErasingResult",
    "EvaluatorNet",
    "LowLevelTap",
    "ORNet",
    "PhaseCheckpointError",
    "RefineNet",
    "UNetDecoder",
    "attentive_erase",
]
