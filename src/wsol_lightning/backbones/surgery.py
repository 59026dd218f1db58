"""In-place stride surgery on timm stages (no dilation, as the WSOL papers do)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn


def remove_downsampling(stage: nn.Module) -> None:
    """Make ``stage`` keep its input resolution: strides of 2 become 1, 2x2/stride-2 pools go.

    Convolutions keep their kernels and padding (so a 3x3 pad-1 conv keeps the size); a pool whose
    kernel equals its stride (ResNet-D average down-sampling, VGG's pools) is replaced by identity; a
    3x3 pad-1 max-pool gets stride 1.
    """
    for parent in stage.modules():
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and child.stride != (1, 1):
                child.stride = (1, 1)
            elif isinstance(child, (nn.MaxPool2d, nn.AvgPool2d)):
                kernel, stride = _pair(child.kernel_size), _pair(child.stride)
                if stride == (1, 1):
                    continue
                if kernel == stride:
                    setattr(parent, child_name, nn.Identity())
                else:
                    child.stride = 1


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


class _StrideOneInceptionB(nn.Module):
    """Mixed_6a with stride 1 and 'same' padding (the SPG/ACoL/BAS InceptionV3 variant)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        for conv in (block.branch3x3.conv, block.branch3x3dbl_3.conv):
            conv.stride, conv.padding = (1, 1), (1, 1)

    def forward(self, x: Tensor) -> Tensor:
        b = self.block
        branch3x3 = b.branch3x3(x)
        branch3x3dbl = b.branch3x3dbl_3(b.branch3x3dbl_2(b.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch_cat([branch3x3, branch3x3dbl, branch_pool])


def torch_cat(tensors: list[Tensor]) -> Tensor:
    """Concatenate along channels."""
    import torch

    return torch.cat(tensors, dim=1)


def widen_inception_v3(stages: Sequence[nn.Sequential]) -> None:
    """Turn timm's valid-padded InceptionV3 into the SPG/BAS/B-CAM variant with Mixed_6e at 28x28 (224 input).

    As the official SPG/BAS/B-CAM stem: only Conv2d_1a gets padding 1 (Conv2d_2a and Conv2d_4a stay
    unpadded), and both stem max-pools are 3x3/2 with padding 1 in ceil mode
    (224 -> 112 -> 110 -> 56 -> 54 -> 28); Mixed_6a runs at stride 1 with 'same' padding.
    """
    modules = {name: module for stage in stages for name, module in stage.named_children()}
    if "Conv2d_1a_3x3" in modules:
        modules["Conv2d_1a_3x3"].conv.padding = (1, 1)
    for name in ("Pool1", "Pool2"):
        if name in modules:
            modules[name].padding = 1
            modules[name].ceil_mode = True
    for stage in stages:
        if "Mixed_6a" in stage._modules:
            stage._modules["Mixed_6a"] = _StrideOneInceptionB(stage._modules["Mixed_6a"])


class _PaddedInceptionD(nn.Module):
    """Mixed_7a with padding 1 on its stride-2 branches (the BAS/SPG variant: 28x28 -> 14x14)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        for conv in (block.branch3x3_2.conv, block.branch7x7x3_4.conv):
            conv.padding = (1, 1)

    def forward(self, x: Tensor) -> Tensor:
        b = self.block
        branch3x3 = b.branch3x3_2(b.branch3x3_1(x))
        branch7x7x3 = b.branch7x7x3_4(b.branch7x7x3_3(b.branch7x7x3_2(b.branch7x7x3_1(x))))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        return torch_cat([branch3x3, branch7x7x3, branch_pool])


def pad_inception_v3_mixed_7a(stages: Sequence[nn.Sequential]) -> bool:
    """Give timm's Mixed_7a padding 1 so it halves exactly (28x28 -> 14x14 at 224 input, as BAS does).

    Returns whether a Mixed_7a was found and padded (``False`` if the stages end before it).
    """
    for stage in stages:
        if "Mixed_7a" in stage._modules:
            stage._modules["Mixed_7a"] = _PaddedInceptionD(stage._modules["Mixed_7a"])
            return True
    return False
