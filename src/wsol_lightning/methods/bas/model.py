"""The BAS network: extractor F1, foreground-map generator G, and the rest F2 (trunk tail + classifier).

``X = F1(I)`` is the mid feature (28x28 at 224 input), ``M = sigmoid(G(X))`` the class-specific
foreground prediction maps (FPMs), ``F = F2(X)`` the class activation maps (14x14) and ``S = GAP(F)``
the logits. :meth:`BASNet.background_logits` runs F2 on ``stopgrad(X) * (1 - M_y)`` with the *current*
weights of F2 but no gradient into them (``torch.func.functional_call`` with detached parameters),
so ``L_bas`` trains only the generator and, through it, F1.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812
import torch.utils.checkpoint
from torch import Tensor, nn
from torch.func import functional_call

from wsol_lightning.backbones import build_trunk
from wsol_lightning.backbones.surgery import pad_inception_v3_mixed_7a
from wsol_lightning.methods.recompute import leaf_blocks, recompute_segments, run_recomputed

PoolBetween = Literal["max", "none"]
BackgroundBN = Literal["batch", "running"]


@dataclass(frozen=True)
class BASPreset:
    """Where BAS cuts a backbone family (tap indices of :func:`~wsol_lightning.backbones.build_trunk`).

    Attributes:
        mid_tap: tap whose output is the generator input X (end of F1).
        high_tap: tap whose output feeds the classifier head (end of the trunk part of F2).
        stride_one_taps: stages run at stride 1 (no dilation).
        pool_between: ``"max"`` for a 2x2/2 max-pool between mid and high taps (ResNet50), else ``"none"``.
        act_layer: the trunk's activation when the official network differs from timm's default
            (MobileNetV1: ReLU in the official code, ReLU6 in timm), else ``None``.

    """

    mid_tap: int = -2
    high_tap: int = -1
    stride_one_taps: tuple[int, ...] = ()
    pool_between: PoolBetween = "none"
    act_layer: str | None = None


#: The official BAS cuts at 224x224: VGG16 conv4_3 (28x28) -> pool4, conv5 (14x14), no pool5;
#: ResNet50 layer3 at stride 1 (28x28) -> 2x2 max-pool -> layer4 at stride 1 (14x14); InceptionV3
#: widened to Mixed_6e at 28x28 -> padded Mixed_7a..7c (14x14); MobileNetV1 with the 256->512 block at
#: stride 1 (28x28) -> the last two blocks (14x14), with ReLU (not timm's ReLU6) as the official network.
BAS_PRESETS: dict[str, BASPreset] = {
    "vgg": BASPreset(mid_tap=3, high_tap=4),
    "resnet": BASPreset(mid_tap=3, high_tap=4, stride_one_taps=(3, 4), pool_between="max"),
    "inception_v3": BASPreset(mid_tap=3, high_tap=4, stride_one_taps=(3,)),
    "mobilenetv1": BASPreset(mid_tap=3, high_tap=4, stride_one_taps=(3,), act_layer="relu"),
}


def bas_preset(backbone: str) -> BASPreset:
    """Return the preset of the first family prefix ``backbone`` starts with (default: last two taps)."""
    for prefix, preset in BAS_PRESETS.items():
        if backbone.startswith(prefix):
            return preset
    return BASPreset()


def classifier_head(in_channels: int, num_classes: int, channels: int = 1024, num_convs: int = 2,
                    final_relu: bool = True, bias: bool = True) -> nn.Sequential:
    """BAS's ``classifier_cls``: ``num_convs`` x (3x3 conv + ReLU), a 1x1 conv to C maps, optional ReLU.

    The CVPR code ends with a ReLU (non-negative maps and logits); the IJCV code does not. The WSSS
    code uses a single bias-free 1x1 conv (``num_convs=0, bias=False``).
    """
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, channels, 3, padding=1, bias=bias), nn.ReLU(inplace=True)]
        in_channels = channels
    layers.append(nn.Conv2d(in_channels, num_classes, 1, bias=bias))
    if final_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BASTail(nn.Module):
    """F2: optional pool, the trunk stages after the mid tap, and the classifier head.

    Args:
        pool: module between the mid and the high tap (``nn.MaxPool2d(2)`` or ``nn.Identity``).
        stages: trunk stages ``mid_tap + 1 .. high_tap``.
        classifier: the ``classifier_cls`` head.

    """

    def __init__(self, pool: nn.Module, stages: Sequence[nn.Module], classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = nn.Sequential(pool, *stages)
        self.classifier = classifier

    def forward(self, mid: Tensor) -> Tensor:
        """Class activation maps ``(B, C, h, w)`` of mid features ``(B, K, H, W)``."""
        return self.classifier(self.features(mid))


class BASNet(nn.Module):
    """F1 -> (G, F2); every cut is an argument, defaulting to the backbone family's preset.

    Args:
        backbone: timm model name.
        num_classes: number of classes C.
        pretrained: ``False``, ``True`` or a local weights file.
        mid_tap: tap ending F1 (generator input); negative counts from the last kept tap.
        high_tap: last trunk tap of F2; negative counts from the last tap of the backbone.
        stride_one_taps: stages run at stride 1.
        pool_between: ``"max"`` (2x2 max-pool before the stages of F2) or ``"none"``.
        head_channels: width of the head's 3x3 convs.
        head_convs: number of 3x3 conv + ReLU layers of the head (2 in the papers).
        final_relu: end the head with a ReLU (CVPR code) or not (IJCV code).
        head_bias: give the generator and the head convs a bias (WSOL code) or not (WSSS code).
        act_layer: trunk activation (timm name); ``None`` takes the preset's (``"relu"`` for MobileNetV1,
            as the official network; timm's default otherwise).

    """

    def __init__(self, backbone: str, num_classes: int, pretrained: bool | str = False,
                 mid_tap: int | None = None, high_tap: int | None = None,
                 stride_one_taps: Sequence[int] | None = None, pool_between: PoolBetween | None = None,
                 head_channels: int = 1024, head_convs: int = 2, final_relu: bool = True,
                 head_bias: bool = True, act_layer: str | None = None) -> None:
        super().__init__()
        preset = bas_preset(backbone)
        mid = preset.mid_tap if mid_tap is None else mid_tap
        high = preset.high_tap if high_tap is None else high_tap
        strides = tuple(preset.stride_one_taps if stride_one_taps is None else stride_one_taps)
        pool = preset.pool_between if pool_between is None else pool_between
        act = preset.act_layer if act_layer is None else act_layer
        if pretrained is True and act is not None and act == preset.act_layer:
            warnings.warn(
                f"BAS '{backbone}': the trunk uses {act!r} as the official network, but timm's pretrained "
                f"weights were trained with timm's own activation; pass the paper's weights file "
                f"(pretrained: /path) or backbone_act to choose",
                stacklevel=2,
            )
        trunk = build_trunk(backbone, pretrained, stride_one_taps=strides,
                            num_taps=high + 1 if high >= 0 else None, act_layer=act)
        num_taps = len(trunk.stages)
        high = high % num_taps if high < 0 else high
        mid = mid % num_taps if mid < 0 else mid
        if not 0 <= mid < high < num_taps:
            raise ValueError(f"need 0 <= mid_tap < high_tap < {num_taps} for '{backbone}', got {mid}, {high}")
        if backbone.startswith("inception_v3") and strides:
            pad_inception_v3_mixed_7a(trunk.stages[mid + 1: high + 1])
        if pool not in ("max", "none"):
            raise ValueError(f"pool_between must be 'max' or 'none', got {pool!r}")
        self.mid_tap, self.high_tap = mid, high
        self.mid_channels, self.high_channels = trunk.channels[mid], trunk.channels[high]
        self.extractor = nn.Sequential(*trunk.stages[: mid + 1])
        self.generator = nn.Conv2d(self.mid_channels, num_classes, 3, padding=1, bias=head_bias)
        head = classifier_head(self.high_channels, num_classes, head_channels, head_convs, final_relu,
                               bias=head_bias)
        pool_module = nn.MaxPool2d(2) if pool == "max" else nn.Identity()
        self.tail = BASTail(pool_module, trunk.stages[mid + 1: high + 1], head)
        for module in (self.generator, *self.tail.classifier):
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, images: Tensor, classes: Tensor | None = None,
                recompute_extractor: bool = False, recompute_blocks: int = 0) -> dict[str, Tensor]:
        """Run F1, G and F2 (no background branch) on ``(B, 3, H, W)`` images.

        Args:
            images: ``(B, 3, H, W)``.
            classes: ``(B,)`` int64: run the generator for these classes only (training reads ``M_y`` alone;
                same numbers, 1/C of the generator's work). ``None``: every class.
            recompute_extractor: keep only F1's block boundaries for backward and recompute the blocks
                there (:func:`~wsol_lightning.methods.recompute.run_recomputed`; same numbers).
            recompute_blocks: recompute F1's first ``recompute_blocks`` layers
                (:func:`~wsol_lightning.methods.recompute.leaf_blocks`: a ResNet's ``conv1, bn1, act1,
                maxpool``, then its bottlenecks) as one segment in backward, keeping only the images and the
                segment's output (same numbers); ignored when ``recompute_extractor`` is set.

        Returns:
            ``mid`` X ``(B, K, H', W')``, ``fpm`` M ``(B, C, H', W')`` in [0, 1] (``(B, H', W')`` = ``M_y``
            when ``classes`` is given), ``cams`` F ``(B, C, h, w)`` and ``logits`` S ``(B, C)``.

        """
        if recompute_extractor:
            mid = run_recomputed(recompute_segments(self.extractor), images)
        elif recompute_blocks:
            blocks = leaf_blocks(self.extractor)
            mid = run_recomputed([nn.Sequential(*blocks[:recompute_blocks])], images)
            for block in blocks[recompute_blocks:]:
                mid = block(mid)
        else:
            mid = self.extractor(images)
        fpm = torch.sigmoid(self.generator(mid) if classes is None else self.class_generator(mid, classes))
        cams = self.tail(mid)
        return {"mid": mid, "fpm": fpm, "cams": cams, "logits": cams.mean(dim=(2, 3))}

    def class_generator(self, mid: Tensor, classes: Tensor) -> Tensor:
        """The generator's pre-sigmoid map of one class per sample: ``(B, H', W')`` from ``(B, K, H', W')``.

        One grouped convolution (a group per sample, with that sample's class filter), so the gradient
        reaches only the filters of ``classes``, as through the full map followed by a gather.
        """
        batch, channels, height, width = mid.shape
        conv = self.generator
        bias = None if conv.bias is None else conv.bias[classes]
        out = F.conv2d(mid.reshape(1, batch * channels, height, width), conv.weight[classes], bias,
                       conv.stride, conv.padding, conv.dilation, groups=batch)
        return out.view(batch, *out.shape[-2:])

    def background_logits(self, mid: Tensor, foreground: Tensor, bn_mode: BackgroundBN = "batch",
                          checkpoint: bool = False) -> Tensor:
        """Return the logits ``(B, C)`` of F2 on ``stopgrad(mid) * (1 - foreground)``, F2's weights frozen.

        Gradient reaches only ``foreground`` (hence the generator and F1). F2 runs with its current
        weights through ``functional_call`` on detached parameters (no copy of the module).

        Args:
            mid: ``(B, K, H, W)`` mid features X (detached here).
            foreground: ``(B, H, W)`` foreground map ``M_y`` in [0, 1].
            bn_mode: ``"batch"`` (the official behaviour: BatchNorm normalises with the statistics of
                the background batch, running statistics untouched) or ``"running"`` (BatchNorm uses its
                running statistics, as at test time).
            checkpoint: keep no activations of the branch for backward and recompute them instead
                (activation checkpointing: less peak memory, one more F2 forward per step).

        """
        if bn_mode not in ("batch", "running"):
            raise ValueError(f"bn_mode must be 'batch' or 'running', got {bn_mode!r}")
        background = mid.detach() * (1.0 - foreground[:, None])
        state = {name: p.detach() for name, p in self.tail.named_parameters()}
        # Clones: a train-mode BatchNorm updates the running stats it is given; these are thrown away.
        state.update({name: b.clone() for name, b in self.tail.named_buffers()})

        def run(features: Tensor) -> Tensor:
            # the BN mode is set inside, so a checkpointed recomputation runs exactly the same way
            with _batchnorm_training(self.tail, bn_mode == "batch"):
                return functional_call(self.tail, state, (features,))

        if checkpoint and torch.is_grad_enabled():
            cams = torch.utils.checkpoint.checkpoint(run, background, use_reentrant=False)
        else:
            cams = run(background)
        return cams.mean(dim=(2, 3))

    def head_modules(self) -> tuple[nn.Module, ...]:
        """Return the layers trained from scratch: the generator and the classifier head."""
        return (self.generator, self.tail.classifier)


@contextmanager
def _batchnorm_training(module: nn.Module, training: bool) -> Iterator[None]:
    """Temporarily set every BatchNorm of ``module`` to train (batch statistics) or eval mode."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    previous = [m.training for m in norms]
    try:
        for m in norms:
            m.train(training)
        yield
    finally:
        for m, mode in zip(norms, previous):
            m.train(mode)
