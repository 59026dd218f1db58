"""timm trunks cut into stages at their feature taps, with the stride surgery WSOL papers use."""

from wsol_lightning.backbones.trunk import Trunk, architecture_name, build_trunk
from wsol_lightning.backbones.weights import load_weights_file

__all__ = ["Trunk", "architecture_name", "build_trunk", "load_weights_file"]
