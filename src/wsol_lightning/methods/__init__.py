"""WSOL methods as LightningModules: CAM, BAS, B-CAM and ORNet."""

from wsol_lightning.methods.base import NonFiniteLossError, WSOLModule
from wsol_lightning.methods.cam import CAM

__all__ = ["CAM", "NonFiniteLossError", "WSOLModule"]

try:  # methods land one by one; each is optional until it exists
    from wsol_lightning.methods.bas import BAS  # noqa: F401

    __all__.append("BAS")
except ImportError:  # pragma: no cover
    pass
try:
    from wsol_lightning.methods.bcam import BCAM  # noqa: F401

    __all__.append("BCAM")
except ImportError:  # pragma: no cover
    pass
try:
    from wsol_lightning.methods.ornet import ORNet  # noqa: F401

    __all__.append("ORNet")
except ImportError:  # pragma: no cover
    pass
