"""A timm CNN cut into sequential stages, one per feature tap, with explicit stride surgery.

WSOL papers enlarge the last feature maps by setting a stage's stride to 1 *without* dilation
(wsolevaluation's ResNet50: layer4 stride 1; BAS: layer3 and layer4 stride 1) or by dropping a
pool (VGG16 without pool5). :class:`Trunk` makes that explicit: stage ``i`` ends at timm tap ``i``
(``feature_info[i]``), ``stride_one_taps`` removes the down-sampling of the listed stages, and
``num_taps`` drops the stages after the last one a method needs (VGG16 ``num_taps=5`` ends at
conv5_3, without pool5).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from timm.models import FeatureListNet
from torch import Tensor, nn

from wsol_lightning.backbones.surgery import remove_downsampling, widen_inception_v3
from wsol_lightning.backbones.weights import create_timm_model


class Trunk(nn.Module):
    """Stages of a timm CNN; ``forward`` returns the output of every requested stage.

    Attributes:
        stages: ``nn.ModuleList`` of ``nn.Sequential``; stage ``i`` ends at tap ``i``.
        channels: channels of each tap.
        reductions: effective stride of each tap after surgery.
        tap_names: timm module name of each tap.

    """

    def __init__(self, stages: Sequence[nn.Sequential], channels: Sequence[int],
                 reductions: Sequence[int], tap_names: Sequence[str]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.channels = list(channels)
        self.reductions = list(reductions)
        self.tap_names = list(tap_names)

    def run(self, x: Tensor, start: int = 0, end: int | None = None) -> Tensor:
        """Run stages ``start .. end-1`` on ``x`` and return the last output ``(B, C_end-1, h, w)``."""
        end = len(self.stages) if end is None else end
        for stage in self.stages[start:end]:
            x = stage(x)
        return x

    def forward(self, x: Tensor, taps: Sequence[int] | None = None) -> list[Tensor]:
        """Return the outputs of ``taps`` (default: every stage) for images ``(B, 3, H, W)``."""
        wanted = set(range(len(self.stages)) if taps is None else taps)
        outputs = []
        for index, stage in enumerate(self.stages[: max(wanted) + 1]):
            x = stage(x)
            if index in wanted:
                outputs.append(x)
        return outputs


def architecture_name(name: str) -> str:
    """Return the timm architecture of a model name, without its weights tag.

    ``"resnet50.tv_in1k"`` -> ``"resnet50"``; a name without a tag is returned unchanged. Everything that
    keys on the architecture (stride surgery, method presets) must look at this, never at the full name.
    """
    return name.split(".", 1)[0]


def build_trunk(
    name: str,
    pretrained: bool | str = False,
    stride_one_taps: Sequence[int] = (),
    num_taps: int | None = None,
    in_chans: int = 3,
    act_layer: str | None = None,
) -> Trunk:
    """Build a :class:`Trunk` from any timm CNN that has ``feature_info``.

    Args:
        name: timm model name, optionally with a weights tag (``resnet50.tv_in1k``, ``vgg16.tv_in1k``,
            ``inception_v3.tv_in1k``, ``mobilenetv1_100``, ...); the surgery keys on the architecture.
        pretrained: ``False``, ``True`` (timm's weights; needs network once) or a local weights file.
        stride_one_taps: taps whose stage keeps the resolution of the previous stage (strides of 2
            set to 1, 2x2 pools removed; no dilation). For ``inception_v3`` any value here applies the
            SPG/ACoL/BAS widening instead (padded stem, Mixed_6a stride 1: Mixed_6e at 28x28).
        num_taps: keep only the first ``num_taps`` stages (drop the rest, e.g. VGG16 pool5).
        in_chans: input channels.
        act_layer: activation of the timm model (e.g. ``"relu"`` for the MobileNetV1 of the WSOL papers,
            where timm's ``mobilenetv1_100`` uses ReLU6); ``None`` keeps timm's default.

    Returns:
        The trunk, with ``channels``/``reductions`` describing each kept tap.

    """
    extra = {} if act_layer is None else {"act_layer": act_layer}
    model = create_timm_model(name, pretrained, in_chans=in_chans, num_classes=0, **extra)
    info = list(model.feature_info)
    if not info:
        raise ValueError(f"timm model '{name}' declares no feature_info; it cannot be used as a WSOL trunk")
    num_taps = len(info) if num_taps is None else num_taps
    if not 1 <= num_taps <= len(info):
        raise ValueError(f"num_taps={num_taps} for '{name}', which has {len(info)} taps")
    bad = [t for t in stride_one_taps if not 0 <= t < num_taps]
    if bad:
        raise ValueError(f"stride_one_taps {bad} out of range for '{name}' with {num_taps} taps")
    features = _feature_net(model, len(info))
    tap_keys = list(features.return_layers)
    stages, current, tap = [], [], 0
    for key, module in features.items():
        current.append((key, module))
        if tap < len(tap_keys) and key == tap_keys[tap]:
            stages.append(nn.Sequential(OrderedDict(current)))
            current, tap = [], tap + 1
            if tap == num_taps:
                break
    reductions = [f["reduction"] for f in info[:num_taps]]
    if stride_one_taps and architecture_name(name) == "inception_v3":
        widen_inception_v3(stages)
        reductions = [2, 4, 8, 8, 16][:num_taps]
    else:
        for t in sorted(stride_one_taps):
            remove_downsampling(stages[t])
            factor = reductions[t] // reductions[t - 1] if t > 0 else reductions[0]
            reductions[t:] = [r // factor for r in reductions[t:]]
    channels = [f["num_chs"] for f in info[:num_taps]]
    names = [f["module"] for f in info[:num_taps]]
    return Trunk(stages, channels, reductions, names)


def _feature_net(model: nn.Module, num_taps: int) -> FeatureListNet:
    """Wrap ``model`` in timm's FeatureListNet (flattened where its taps need it)."""
    indices = tuple(range(num_taps))
    try:
        return FeatureListNet(model, out_indices=indices, flatten_sequential=True)
    except AssertionError:
        return FeatureListNet(model, out_indices=indices, flatten_sequential=False)


@torch.no_grad()
def tap_shapes(trunk: Trunk, image_size: int = 224) -> list[tuple[int, int, int]]:
    """Return ``(channels, height, width)`` of every tap for one ``image_size`` square input."""
    was_training = trunk.training
    trunk.eval()
    outputs = trunk(torch.zeros(1, 3, image_size, image_size))
    trunk.train(was_training)
    return [tuple(o.shape[1:]) for o in outputs]
