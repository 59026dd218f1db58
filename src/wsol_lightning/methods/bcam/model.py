"""The B-CAM network: a trunk, two zero-initialised attention aggregators and two classifiers.

Notation (Zhu et al., arXiv:2112.14379 / TPAMI 2023, official code zh460045050/BCAM): pixel features
``F`` ``(B, C, h, w)``; the object aggregator ``A_o`` and the background aggregator ``A_b`` (1x1 convs to
``K`` heads, softmax over the ``h*w`` positions, heads averaged) pool ``F`` into ``f_o`` and ``f_b``
``(B, C)``; the object classifier ``W_o`` and the background classifier ``W_b`` (1x1 convs ``C -> N``)
score them. ``f~`` pools ``stop_grad(F)`` with the same attention, so a loss on ``W_b f~`` reaches the
trunk only through the attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from wsol_lightning.backbones import build_trunk

GradientVariant = Literal["cub", "ilsvrc", "openimages"]
InitMode = Literal["he", "xavier", "zeros", "default"]


def init_conv(conv: nn.Conv2d, mode: InitMode) -> None:
    """Initialise a new conv as the official code does; the bias (if any) is zeroed except for ``default``.

    ``he``: normal, std ``sqrt(2 / fan_out)`` (``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, the
    official WSOL code for every new conv: classifiers ``C -> 200`` get std 0.1); ``xavier``: uniform Glorot
    (the official VOC code; InceptionV3 on OpenImages); ``zeros`` (the official aggregators); ``default``:
    PyTorch's own initialisation, left as is.
    """
    if mode == "default":
        return
    if mode == "he":
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    elif mode == "xavier":
        nn.init.xavier_uniform_(conv.weight)
    elif mode == "zeros":
        nn.init.zeros_(conv.weight)
    else:
        raise ValueError(f"init mode must be he, xavier, zeros or default, got {mode!r}")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


@dataclass(frozen=True)
class BCAMPreset:
    """How the official B-CAM code cuts each backbone.

    Attributes:
        num_taps: trunk stages kept (the last one feeds the head).
        stride_one_taps: stages run at stride 1 (no dilation).
        extra_convs: output channels of 3x3 conv + ReLU layers appended to the trunk (VGG's conv6,
            InceptionV3's two SPG convs).
        dropout: dropout before, between and after the extra convs (InceptionV3: 0.5).
        aggregate_trunk: the aggregators read the trunk output (before the extra convs) instead of ``F``
            (VGG16: conv5_3).
        aggregator_bias: the aggregators' 1x1 convs have a bias.
        gradient_tap: number of extra convs before the layer the gradient map differentiates
            (ResNet ``layer4`` = 0, VGG ``conv6`` = 1, InceptionV3 ``SPG_A3_1b`` = 1).
        gradient_before_relu: the differentiated layer is the last extra conv's output *before* its ReLU
            (VGG: the official hook is on ``conv6``, a bare ``nn.Conv2d``; InceptionV3's ``SPG_A3_1b`` is a
            conv + ReLU ``nn.Sequential``, so its hook sees the output after the ReLU).
        head_lr_taps: trunk stages trained at the head lr (ResNet's layer4).

    """

    num_taps: int | None = None
    stride_one_taps: tuple[int, ...] = ()
    extra_convs: tuple[int, ...] = ()
    dropout: float = 0.0
    aggregate_trunk: bool = False
    aggregator_bias: bool = False
    gradient_tap: int = 0
    gradient_before_relu: bool = False
    head_lr_taps: tuple[int, ...] = ()


#: ResNet: layer3 and layer4 at stride 1 (28x28 at 224, ``large_feature_map``), layer4 at 10x lr;
#: VGG16: conv5_3 without pool5 (14x14) + conv6 512->1024, aggregators on conv5_3 with bias;
#: InceptionV3: Mixed_6e at 28x28 + two 3x3 convs 768->1024->1024 with dropout 0.5.
BCAM_PRESETS: dict[str, BCAMPreset] = {
    "vgg": BCAMPreset(num_taps=5, extra_convs=(1024,), aggregate_trunk=True, aggregator_bias=True,
                      gradient_tap=1, gradient_before_relu=True),
    "inception_v3": BCAMPreset(num_taps=4, stride_one_taps=(3,), extra_convs=(1024, 1024), dropout=0.5,
                               gradient_tap=1),
    "resnet": BCAMPreset(stride_one_taps=(3, 4), head_lr_taps=(4,)),
}


def bcam_preset(backbone: str) -> BCAMPreset:
    """Return the preset of the first family prefix ``backbone`` starts with (default: last tap as is)."""
    for prefix, preset in BCAM_PRESETS.items():
        if backbone.startswith(prefix):
            return preset
    return BCAMPreset()


def attention_pool(features: Tensor, attention_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Head-averaged softmax attention pooling.

    Args:
        features: ``(B, C, h, w)`` pixel features.
        attention_logits: ``(B, K, h, w)`` aggregator outputs.

    Returns:
        Pooled features ``(B, C)`` and the head-averaged attention ``(B, h, w)`` (sums to 1 per image).

    """
    b, k, h, w = attention_logits.shape
    attention = attention_logits.reshape(b, k, h * w).softmax(dim=-1).mean(dim=1)  # (B, hw)
    pooled = torch.einsum("bp,bcp->bc", attention, features.flatten(2))
    return pooled, attention.reshape(b, h, w)


class BCAMHead(nn.Module):
    """Two zero-initialised K-head attention aggregators and two 1x1 classifiers.

    Args:
        feature_channels: channels ``C`` of the pixel features ``F``.
        aggregator_channels: channels of the aggregators' input.
        num_classes: classes ``N``.
        num_heads: attention heads ``K``.
        aggregator_bias: aggregators with a bias.
        classifier_bias: classifiers with a bias.
        classifier_init: :func:`init_conv` mode of the classifiers (official WSOL ``he``, VOC ``xavier``).
        aggregator_init: :func:`init_conv` mode of the aggregators (official WSOL ``zeros``: uniform softmax,
            training starts as exact GAP; VOC ``xavier``).

    """

    def __init__(self, feature_channels: int, aggregator_channels: int, num_classes: int,
                 num_heads: int = 100,
                 aggregator_bias: bool = False, classifier_bias: bool = True,
                 classifier_init: InitMode = "he", aggregator_init: InitMode = "zeros") -> None:
        super().__init__()
        self.aggregator_obj = nn.Conv2d(aggregator_channels, num_heads, 1, bias=aggregator_bias)
        self.aggregator_bg = nn.Conv2d(aggregator_channels, num_heads, 1, bias=aggregator_bias)
        self.classifier_obj = nn.Conv2d(feature_channels, num_classes, 1, bias=classifier_bias)
        self.classifier_bg = nn.Conv2d(feature_channels, num_classes, 1, bias=classifier_bias)
        for aggregator in (self.aggregator_obj, self.aggregator_bg):
            init_conv(aggregator, aggregator_init)
        for classifier in (self.classifier_obj, self.classifier_bg):
            init_conv(classifier, classifier_init)

    @staticmethod
    def _linear(classifier: nn.Conv2d, pooled: Tensor) -> Tensor:
        return classifier(pooled[:, :, None, None]).flatten(1)

    def forward(self, features: Tensor, aggregator_input: Tensor, detach_obj_for_bg: bool = True,
                detach_bg_for_bg: bool = True) -> dict[str, Tensor]:
        """Return the four stagger logits ``(B, N)`` and the two attentions ``(B, h, w)``.

        Args:
            features: pixel features ``F`` ``(B, C, h, w)``.
            aggregator_input: what the aggregators read ``(B, C', h, w)`` (``F`` or an earlier layer).
            detach_obj_for_bg: ``W_b`` scores ``f~_o`` (pooled from ``stop_grad(F)``) instead of ``f_o``.
            detach_bg_for_bg: ``W_b`` scores ``f~_b`` instead of ``f_b``.

        Returns:
            ``logits`` = ``W_o f_o``, ``logits_bg_on_obj`` = ``W_b f~_o``, ``logits_bg_on_bg`` =
            ``W_b f~_b``, ``logits_obj_on_bg`` = ``W_o f_b``, ``attention_obj``/``attention_bg``.

        """
        f_obj, att_obj = attention_pool(features, self.aggregator_obj(aggregator_input))
        f_bg, att_bg = attention_pool(features, self.aggregator_bg(aggregator_input))
        detached = features.detach()
        f_obj_sg, f_bg_sg = f_obj, f_bg
        if detach_obj_for_bg:
            f_obj_sg = attention_pool(detached, self.aggregator_obj(aggregator_input))[0]
        if detach_bg_for_bg:
            f_bg_sg = attention_pool(detached, self.aggregator_bg(aggregator_input))[0]
        return {
            "logits": self._linear(self.classifier_obj, f_obj),
            "logits_bg_on_obj": self._linear(self.classifier_bg, f_obj_sg),
            "logits_bg_on_bg": self._linear(self.classifier_bg, f_bg_sg),
            "logits_obj_on_bg": self._linear(self.classifier_obj, f_bg),
            "attention_obj": att_obj,
            "attention_bg": att_bg,
        }

    def class_maps(self, features: Tensor) -> Tensor:
        """Object classifier on every pixel, all classes: ``W_o F + b_o`` ``(B, N, h, w)``."""
        return self.classifier_obj(features)

    def pixel_scores(self, features: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """Return object and background scores ``W F + b`` of ``classes`` ``(B,)``, each ``(B, h, w)``."""
        scores = []
        for classifier in (self.classifier_obj, self.classifier_bg):
            weight = classifier.weight[classes, :, 0, 0]  # (B, C)
            score = torch.einsum("bc,bchw->bhw", weight, features)
            if classifier.bias is not None:
                score = score + classifier.bias[classes][:, None, None]
            scores.append(score)
        return scores[0], scores[1]


def _extra_block(in_channels: int, out_channels: int, init: InitMode, relu: bool = True) -> nn.Sequential:
    """A new 3x3 conv (+ ReLU unless ``relu=False``: then the caller puts the ReLU after the gradient tap)."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    init_conv(conv, init)
    return nn.Sequential(conv, nn.ReLU(inplace=True)) if relu else nn.Sequential(conv)


class BCAMNet(nn.Module):
    """Trunk -> (extra convs) -> :class:`BCAMHead`, with the plain and the official gradient maps.

    Args:
        backbone: timm model name (any CNN with ``feature_info``).
        num_classes: classes ``N``.
        pretrained: ``False``, ``True`` or a local weights file.
        num_heads: attention heads ``K`` per aggregator (official default 100; VOC 20).
        detach_obj_for_bg: ``W_b`` scores ``f~_o`` (stop-gradient pixel features), as the official WSOL code.
        detach_bg_for_bg: ``W_b`` scores ``f~_b`` (stop-gradient pixel features), as the official WSOL code.
        aggregator_bias: override the preset's aggregator bias.
        classifier_bias: classifiers with a bias (official WSOL code: yes; VOC code: no).
        stride_one_taps: override the preset's stride-1 stages.
        num_taps: override the preset's number of stages.
        extra_convs: override the preset's extra 3x3 convs (channels each; empty = none).
        aggregate_trunk: override whether the aggregators read the trunk output rather than ``F``.
        head_init: :func:`init_conv` mode of the new convs and classifiers (official WSOL: ``he``).
        aggregator_init: :func:`init_conv` mode of the aggregators (official WSOL: ``zeros``).
        frozen_taps: trunk stages whose parameters are frozen (``requires_grad=False``; the VOC/IRN code
            freezes the stem ``conv1``/``bn1``, tap 0 of a ResNet).
        detach_taps: trunk stages whose output is detached (the VOC/IRN code detaches ``layer2``, tap 2:
            nothing before it is trained).
        frozen_bn: every BatchNorm of the trunk normalises with its running statistics and never updates
            them, in training too (IRN's ``FixedBatchNorm``); its affine parameters still train.

    """

    def __init__(self, backbone: str, num_classes: int, pretrained: bool | str = False, num_heads: int = 100,
                 detach_obj_for_bg: bool = True, detach_bg_for_bg: bool = True,
                 aggregator_bias: bool | None = None, classifier_bias: bool = True,
                 stride_one_taps: tuple[int, ...] | None = None, num_taps: int | None = None,
                 extra_convs: tuple[int, ...] | None = None, aggregate_trunk: bool | None = None,
                 head_init: InitMode = "he", aggregator_init: InitMode = "zeros",
                 frozen_taps: tuple[int, ...] = (), detach_taps: tuple[int, ...] = (),
                 frozen_bn: bool = False) -> None:
        super().__init__()
        preset = bcam_preset(backbone)
        self.preset = preset
        self.trunk = build_trunk(
            backbone, pretrained,
            stride_one_taps=preset.stride_one_taps if stride_one_taps is None else tuple(stride_one_taps),
            num_taps=preset.num_taps if num_taps is None else num_taps,
        )
        extras = preset.extra_convs if extra_convs is None else tuple(extra_convs)
        gradient_tap = min(preset.gradient_tap, len(extras))
        trunk_channels = channels = self.trunk.channels[-1]
        pre: list[nn.Module] = []
        post: list[nn.Module] = []
        for index, out_channels in enumerate(extras):
            target = pre if index < gradient_tap else post
            if preset.dropout:
                target.append(nn.Dropout(preset.dropout))
            split = preset.gradient_before_relu and index == gradient_tap - 1
            target.append(_extra_block(channels, out_channels, head_init, relu=not split))
            if split:  # the tap is the conv output; its ReLU must not overwrite it in place
                post.append(nn.ReLU(inplace=False))
            channels = out_channels
        if extras and preset.dropout:
            post.append(nn.Dropout(preset.dropout))
        #: trunk output -> gradient-map layer (VGG conv6, Inception SPG_A3_1b; identity for ResNet).
        self.extra_pre = nn.Sequential(*pre)
        #: gradient-map layer -> pixel features F.
        self.extra_post = nn.Sequential(*post)
        aggregate = preset.aggregate_trunk if aggregate_trunk is None else aggregate_trunk
        self.aggregate_trunk = bool(aggregate and extras)
        self.gradient_at_trunk = gradient_tap == 0
        self.head = BCAMHead(
            channels, trunk_channels if self.aggregate_trunk else channels, num_classes, num_heads,
            aggregator_bias=preset.aggregator_bias if aggregator_bias is None else aggregator_bias,
            classifier_bias=classifier_bias, classifier_init=head_init, aggregator_init=aggregator_init,
        )
        bad = [t for t in (*frozen_taps, *detach_taps) if not 0 <= t < len(self.trunk.stages)]
        if bad:
            raise ValueError(f"frozen_taps/detach_taps {bad} out of range for '{backbone}' with "
                             f"{len(self.trunk.stages)} trunk stages")
        for tap in frozen_taps:
            self.trunk.stages[tap].requires_grad_(False)
        self.detach_taps = frozenset(detach_taps)
        self.frozen_bn = frozen_bn
        self.detach_obj_for_bg = detach_obj_for_bg
        self.detach_bg_for_bg = detach_bg_for_bg
        self.feature_channels = channels

    def new_modules(self) -> list[nn.Module]:
        """Return the layers trained from scratch (extra convs and head); the module adds ``head_lr_taps``."""
        return [self.extra_pre, self.extra_post, self.head]

    def train(self, mode: bool = True) -> BCAMNet:
        """As ``nn.Module.train``; with ``frozen_bn`` the trunk's BatchNorms stay in eval mode."""
        super().train(mode)
        if self.frozen_bn:
            for module in self.trunk.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def run_trunk(self, images: Tensor) -> Tensor:
        """Run the trunk stages, detaching the outputs of ``detach_taps``."""
        x = images
        for index, stage in enumerate(self.trunk.stages):
            x = stage(x)
            if index in self.detach_taps:
                x = x.detach()
        return x

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Return the stagger logits, attentions, ``features`` ``F``, ``target`` and ``aggregator_input``."""
        trunk_out = self.run_trunk(images)
        target = self.extra_pre(trunk_out)
        features = self.extra_post(target)
        aggregator_input = trunk_out if self.aggregate_trunk else features
        outputs = self.head(features, aggregator_input, self.detach_obj_for_bg, self.detach_bg_for_bg)
        outputs.update(features=features, target=target, aggregator_input=aggregator_input)
        return outputs

    def plain_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> tuple[Tensor, Tensor]:
        """Return the maps ``W_o F + b_o`` and ``W_b F + b_b`` of ``classes`` ``(B,)``, each ``(B, h, w)``."""
        return self.head.pixel_scores(outputs["features"], classes)

    def gradient_maps(self, outputs: dict[str, Tensor], classes: Tensor,
                      variant: GradientVariant = "cub") -> tuple[Tensor, Tensor]:
        """Return the official test-time object and background maps (gradients at the ``target`` layer).

        Object score ``s_o = z_oo[y] - z_bo[y]`` and background score ``s_b = z_bb[y] - z_ob[y]``
        (``openimages``: ``z_oo[y]`` and ``z_bb[y]`` only); ``G = ds/dA`` at the target layer ``A``,
        ``w_c`` = spatial mean of ``G_c``; the map is ``sum_c w_c G_c`` (``cub``), ``sum_c relu(w_c) G_c``
        (``ilsvrc``) or ``sum_c w_c A_c`` (``openimages``, Grad-CAM without ReLU). Works under
        ``torch.no_grad``/``inference_mode`` (it re-enables autograd on a copy of the target layer).

        Args:
            outputs: :meth:`forward` outputs.
            classes: ``(B,)`` classes.
            variant: ``cub``, ``ilsvrc`` or ``openimages``.

        Returns:
            Object and background maps ``(B, h, w)``, detached.

        """
        if variant not in ("cub", "ilsvrc", "openimages"):
            raise ValueError(f"gradient map variant must be cub, ilsvrc or openimages, got {variant!r}")
        with torch.inference_mode(False), torch.enable_grad():
            target = outputs["target"].detach().clone().requires_grad_(True)
            features = self.extra_post(target)
            if not self.aggregate_trunk:
                aggregator_input = features
            elif self.gradient_at_trunk:
                aggregator_input = target
            else:
                aggregator_input = outputs["aggregator_input"].detach().clone()
            logits = self.head(features, aggregator_input, self.detach_obj_for_bg, self.detach_bg_for_bg)
            index = classes.detach().clone()[:, None]
            pick = {k: logits[k].gather(1, index)[:, 0] for k in
                    ("logits", "logits_bg_on_obj", "logits_bg_on_bg", "logits_obj_on_bg")}
            score_obj, score_bg = pick["logits"], pick["logits_bg_on_bg"]
            if variant != "openimages":
                score_obj = score_obj - pick["logits_bg_on_obj"]
                score_bg = score_bg - pick["logits_obj_on_bg"]
            grad_obj = _grad_or_zeros(score_obj, target, retain_graph=True)
            grad_bg = _grad_or_zeros(score_bg, target, retain_graph=False)
        activation = target.detach()
        return _gradient_map(grad_obj, activation, variant), _gradient_map(grad_bg, activation, variant)


def _grad_or_zeros(score: Tensor, target: Tensor, retain_graph: bool) -> Tensor:
    """``d sum(score) / d target``; zeros where the score does not depend on the target layer."""
    if not score.requires_grad:
        return torch.zeros_like(target)
    grad = torch.autograd.grad(score.sum(), target, retain_graph=retain_graph, allow_unused=True)[0]
    return torch.zeros_like(target) if grad is None else grad


def _gradient_map(grad: Tensor, activation: Tensor, variant: GradientVariant) -> Tensor:
    """``(B, C, h, w)`` gradient and activation -> ``(B, h, w)`` map of the given variant."""
    weights = grad.mean(dim=(2, 3), keepdim=True)
    if variant == "ilsvrc":
        weights = weights.clamp(min=0)
    source = activation if variant == "openimages" else grad
    return (weights * source).sum(dim=1).detach()
