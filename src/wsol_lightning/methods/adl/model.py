"""ADL: the attention-based dropout layer, and its insertion into a CAM trunk.

Choe & Shim, "Attention-based Dropout Layer for Weakly Supervised Object Localization", CVPR 2019, as
clovaai/wsolevaluation implements it (``wsol/method/adl.py``; positions in ``wsol/resnet.py`` and
``wsol/vgg.py``). During training, at each inserted position, the channel-mean attention ``A`` of the
features gives either an importance map ``sigmoid(A)`` or a drop mask ``A < threshold * max(A)`` (one choice
per call for the whole batch: the drop mask with probability ``drop_rate``), and the features are
multiplied by it. At evaluation the layer is the identity. The layers have no parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from wsol_lightning.backbones.trunk import Trunk

#: the reference's insertion points (wsolevaluation, 14x14 maps) in timm's module names: ResNet after the first
#: block of layer3 and the first and last blocks of layer4 (its ``_ADL_POSITION``); VGG16 after pool3
#: (``features.16``), conv4_3's ReLU (``features.22``) and conv5_3's ReLU (``features.29``) (its ``'A'``
#: entries); InceptionV3 after Mixed_5d (before the 3x3/2 pool), Mixed_6e and the head's second 3x3 conv + ReLU
#: (``InceptionAdl``'s ``ADL_5d``, ``ADL_6e``, ``ADL_A3_2b``; ``extra.`` names a child of the CAM head).
#: ``-1`` is the last block of a stage.
ADL_POSITIONS: dict[str, tuple[str, ...]] = {
    "resnet": ("layer3.0", "layer4.0", "layer4.-1"),
    "vgg": ("features.16", "features.22", "features.29"),
    "inception_v3": ("Mixed_5d", "Mixed_6e", "extra.relu_b"),
}


def attention_dropout(features: Tensor, drop_rate: float, threshold: float, uniform: float | Tensor) -> Tensor:
    """ADL's training-time gating of ``features`` for one draw ``uniform`` in [0, 1).

    Args:
        features: ``(B, C, h, w)``.
        drop_rate: probability of using the drop mask instead of the importance map.
        threshold: the drop mask removes positions whose attention is ``>= threshold`` x the sample's maximum.
        uniform: the call's draw; the drop mask is used when ``floor(uniform + drop_rate) == 1``
            (computed in float32, as the reference's ``torch.rand([], dtype=float32) + drop_rate``).

    Returns:
        ``features * map`` with ``map`` ``(B, 1, h, w)`` the importance map ``sigmoid(A)`` or the drop mask.

    """
    attention = features.mean(dim=1, keepdim=True)  # (B, 1, h, w)
    u = torch.as_tensor(uniform, dtype=torch.float32).detach().cpu()
    if bool(torch.floor(u + drop_rate) >= 1):
        peak = attention.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
        return features * (attention < peak * threshold).to(features.dtype)
    return features * torch.sigmoid(attention)


class AttentionDropout(nn.Module):
    """The ADL layer: :func:`attention_dropout` while training, the identity in eval mode.

    Args:
        drop_rate: probability of the drop mask (wsolevaluation ``--adl_drop_rate``).
        threshold: drop threshold relative to the maximum attention (wsolevaluation ``--adl_threshold``).

    Attributes:
        pending: draws to use for the next calls, first in first out (``[]``: draw from the global generator);
            set by :meth:`ADLNet.forward`'s ``uniforms`` to replay a given sequence.

    """

    def __init__(self, drop_rate: float = 0.75, threshold: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= drop_rate <= 1.0 or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"ADL: drop_rate and threshold must be in [0, 1], got {drop_rate}, {threshold}")
        self.drop_rate, self.threshold = drop_rate, threshold
        self.pending: list[float] = []

    def forward(self, features: Tensor) -> Tensor:
        """Gate ``(B, C, h, w)`` features (training) or return them unchanged (eval)."""
        if not self.training:
            return features
        uniform = self.pending.pop(0) if self.pending else torch.rand((), dtype=torch.float32)
        return attention_dropout(features, self.drop_rate, self.threshold, uniform)

    def extra_repr(self) -> str:
        """Show the hyperparameters in ``print(model)``."""
        return f"drop_rate={self.drop_rate}, threshold={self.threshold}"


def default_adl_positions(trunk: Trunk) -> tuple[str, ...]:
    """The reference's ADL positions for a CAM trunk, found from its structure (any depth of the family).

    A ResNet-style trunk (``layer3``/``layer4`` stages): after ``layer3.0``, ``layer4.0`` and the last block of
    ``layer4``. An InceptionV3 trunk cut at Mixed_6e: after Mixed_5d, Mixed_6e and the head's ``relu_b``. A
    VGG-style trunk (flattened ``features_<i>``): after pool3 (the first module of stage 3), the
    last ReLU of stage 3 (conv4_x) and the last ReLU of stage 4 (conv5_x): ``features.16/22/29`` on VGG16.

    Raises:
        ValueError: another family; pass ``adl_positions`` explicitly.

    """
    children = [list(stage._modules) for stage in trunk.stages]
    if any("Mixed_5d" in stage for stage in children) and "Mixed_6e" in children[-1]:
        return ADL_POSITIONS["inception_v3"]
    if len(children) == 5 and "layer3" in children[3] and "layer4" in children[4]:
        return ADL_POSITIONS["resnet"]
    if len(children) == 5 and all(k.startswith("features_") for stage in children for k in stage):
        return tuple(k.replace("_", ".") for k in (children[3][0], children[3][-1], children[4][-1]))
    raise ValueError(f"ADL has no default insertion points for this trunk (stages {children}): pass adl_positions "
                     "(timm module names inside the trunk, e.g. ['layer3.0', 'layer4.-1'])")


def _locate(trunk: Trunk, position: str, head: nn.Module | None = None) -> tuple[nn.Sequential, str]:
    """The ``nn.Sequential`` holding ``position`` and the child's key in it (``-1`` = last block).

    ``extra.<child>`` names a child of ``head`` (the CAM's extra layers).
    """
    if position.startswith("extra."):
        key = position[len("extra."):]
        if isinstance(head, nn.Sequential) and key in head._modules:
            return head, key
        children = list(head._modules) if isinstance(head, nn.Sequential) else []
        raise ValueError(f"ADL position '{position}' is not a child of the CAM head (children: {children})")
    parent_name, _, child = position.rpartition(".")
    candidates = [(parent_name, child), ("", position.replace(".", "_"))]
    for stage in trunk.stages:
        for name, key in candidates:
            parent = stage.get_submodule(name) if name and _has(stage, name) else (stage if not name else None)
            if not isinstance(parent, nn.Sequential):
                continue
            keys = [k for k, m in parent._modules.items() if not isinstance(m, AttentionDropout)]
            if key.lstrip("-").isdigit() and name:
                index = int(key)
                if -len(keys) <= index < len(keys):
                    return parent, keys[index]
            elif key in parent._modules:
                return parent, key
    raise ValueError(f"ADL position '{position}' is not a module of the trunk (stages: "
                     f"{[list(s._modules) for s in trunk.stages]})")


def _has(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def insert_adl(trunk: Trunk, positions: Sequence[str], drop_rate: float, threshold: float,
               head: nn.Module | None = None) -> list[AttentionDropout]:
    """Insert an :class:`AttentionDropout` after each of ``positions`` (timm module names) in ``trunk``.

    A position ``extra.<child>`` is a child of ``head`` (an ``nn.Sequential``, e.g. the InceptionV3 CAM head).

    The layers become children of the containing ``nn.Sequential`` (named ``adl<i>``), so parameter keys do
    not change. Positions that resolve to the same module (e.g. ``layer4.0`` and ``layer4.-1`` of a one-block
    stage) get one layer.

    Returns:
        The inserted layers in forward order of ``positions``.

    """
    layers: list[AttentionDropout] = []
    seen: set[tuple[int, str]] = set()
    for position in positions:
        parent, key = _locate(trunk, position, head)
        if (id(parent), key) in seen:
            continue
        seen.add((id(parent), key))
        layer = AttentionDropout(drop_rate, threshold)
        items = []
        for k, m in parent._modules.items():
            items.append((k, m))
            if k == key:
                items.append((f"adl{len(layers)}", layer))
        parent._modules = OrderedDict(items)
        layers.append(layer)
    return layers
