"""Optimiser groups put only tensors NAMED ``bias`` in the bias groups (issue 12, deviation 4)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from wsol_lightning.methods import BAS
from wsol_lightning.methods.base import WSOLModule


class _Tiny(WSOLModule):
    """conv (bias) -> BN -> conv head (bias), with the head at 10x / 20x."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(backbone="none", num_classes=3, lr=0.1, backbone_lr_mult=1.0, backbone_bias_lr_mult=2.0,
                         head_lr_mult=10.0, head_bias_lr_mult=20.0, **kwargs)
        self.conv = nn.Conv2d(3, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 3, 1, bias=True)
        self.scale = nn.Parameter(torch.ones(4))  # a 1-d tensor that is not a bias
        self.frozen = nn.Parameter(torch.zeros(2), requires_grad=False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return {"logits": self.head(self.bn(self.conv(images)) * self.scale[:, None, None]).mean((2, 3))}

    def head_modules(self) -> Iterable[nn.Module]:
        return (self.head,)


def _by_name(groups: list[dict]) -> dict[str, tuple[float, set[int]]]:
    return {g["name"]: (g["lr"], {id(p) for p in g["params"]}) for g in groups}


def test_batchnorm_scale_is_a_weight_and_conv_bias_a_bias():
    model = _Tiny()
    groups = _by_name(model.parameter_groups())
    expected = {
        "backbone_weights": (0.1, {id(model.conv.weight), id(model.bn.weight), id(model.scale)}),
        "backbone_biases": (0.2, {id(model.conv.bias), id(model.bn.bias)}),
        "head_weights": (1.0, {id(model.head.weight)}),
        "head_biases": (2.0, {id(model.head.bias)}),
    }
    assert groups.keys() == expected.keys()
    for name, (lr, ids) in expected.items():
        assert groups[name][1] == ids, name
        assert abs(groups[name][0] - lr) < 1e-12, name


def test_bas_four_groups_follow_the_official_rule():
    """BAS/CUB/utils/optimizer.py: 'classifier' -> last groups; 'weight' in name -> weights, 'bias' -> biases."""
    model = BAS(backbone="resnet10t", num_classes=5, pretrained=False, lr=1e-3, backbone_lr_mult=1.0,
                backbone_bias_lr_mult=2.0, head_lr_mult=10.0, head_bias_lr_mult=20.0)
    head = {id(p) for m in model.head_modules() for p in m.parameters()}
    expected: dict[str, set[int]] = {k: set() for k in ("backbone_weights", "backbone_biases", "head_weights",
                                                        "head_biases")}
    bn_weights = 0
    for name, param in model.named_parameters():
        last = name.rsplit(".", 1)[-1]
        assert last in ("weight", "bias"), name  # every BAS parameter is one or the other, as in the official net
        part = "head" if id(param) in head else "backbone"
        expected[f"{part}_{'weights' if last == 'weight' else 'biases'}"].add(id(param))
        bn_weights += int(last == "weight" and param.ndim == 1 and id(param) not in head)
    groups = _by_name(model.parameter_groups())
    assert {k: v[1] for k, v in groups.items()} == {k: v for k, v in expected.items() if v}
    assert bn_weights > 0  # the trunk's BatchNorm scales: the official code trains them at lr x1, not x2
    lrs = {k: v[0] for k, v in groups.items()}
    assert lrs == {"backbone_weights": 1e-3, "backbone_biases": 2e-3, "head_weights": 1e-2, "head_biases": 2e-2}
