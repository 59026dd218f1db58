"""Activation recomputation (``torch.utils.checkpoint``) that leaves BatchNorm's running statistics exact.

A checkpointed segment runs its forward a second time during backward. A train-mode BatchNorm would then
update its running statistics twice per step; here the recomputation restores them afterwards, so the
buffers, the losses and the gradients equal those of a run without recomputation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.utils.checkpoint
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def leaf_blocks(module: nn.Module) -> list[nn.Module]:
    """Flatten nested ``nn.Sequential`` containers into their non-``Sequential`` members, in order.

    For a timm ResNet trunk this gives the stem layers, the max-pool and every bottleneck block: the
    natural segments to recompute one by one.
    """
    if not isinstance(module, nn.Sequential):
        return [module]
    return [block for child in module for block in leaf_blocks(child)]


def recompute_segments(module: nn.Module) -> list[nn.Module]:
    """:func:`leaf_blocks` grouped so that no segment starts with an in-place layer.

    An in-place activation (``inplace=True``) would overwrite its input, which a segment boundary keeps
    for the recomputation; it therefore joins the segment before it (stem ``conv, bn, relu`` -> ``conv``,
    ``bn + relu``).
    """
    segments: list[list[nn.Module]] = []
    for block in leaf_blocks(module):
        if segments and getattr(block, "inplace", False):
            segments[-1].append(block)
        else:
            segments.append([block])
    return [group[0] if len(group) == 1 else nn.Sequential(*group) for group in segments]


@contextmanager
def running_stats_restored(module: nn.Module) -> Iterator[None]:
    """Put every BatchNorm buffer of ``module`` back to its value on entry when the block exits."""
    saved = [(buffer, buffer.clone()) for norm in module.modules() if isinstance(norm, _BatchNorm)
             for buffer in norm.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def _contexts(module: nn.Module) -> tuple[Any, Any]:
    return nullcontext(), running_stats_restored(module)


def run_recomputed(blocks: list[nn.Module], x: Tensor) -> Tensor:
    """Run ``blocks`` in sequence keeping only each block's input for backward (recomputed there).

    Peak activation memory drops from the sum over the blocks to about the largest block plus the block
    boundaries, for one more forward of the blocks per step. Same values, gradients and BatchNorm
    buffers as ``nn.Sequential(*blocks)(x)`` (RNG state is replayed by ``torch.utils.checkpoint``).

    Args:
        blocks: modules applied in order (e.g. :func:`recompute_segments` of a trunk); none may modify
            its input in place.
        x: input of the first block.

    Returns:
        The output of the last block.

    """
    if not torch.is_grad_enabled():
        for block in blocks:
            x = block(x)
        return x
    for block in blocks:
        x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False,
                                              context_fn=lambda b=block: _contexts(b))
    return x
