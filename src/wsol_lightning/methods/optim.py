"""Optimizers and learning-rate schedules used by the WSOL papers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, MultiStepLR, StepLR


def parameter_groups_by_name(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]], head_ids: set[int], lr: float,
    multipliers: dict[str, float],
) -> list[dict[str, Any]]:
    """Split trainable parameters into backbone/head x weights/biases groups, each at ``lr x multiplier``.

    A "bias" is a parameter NAMED ``bias`` (the last component of its name), as in the official code
    (``'bias' in name``): BatchNorm scales, 1-d layer-scale or embedding vectors are weights.

    Args:
        named_parameters: ``module.named_parameters()``; frozen parameters (``requires_grad=False``) are left out.
        head_ids: ``id()`` of the parameters trained from scratch (the head); every other one is backbone.
        lr: base learning rate.
        multipliers: lr multiplier per group name: ``backbone_weights``, ``backbone_biases``, ``head_weights``,
            ``head_biases``.

    Returns:
        The non-empty groups in that order, each ``{"params", "lr", "name"}``.

    """
    groups: dict[str, list[torch.nn.Parameter]] = {k: [] for k in
                                                   ("backbone_weights", "backbone_biases", "head_weights",
                                                    "head_biases")}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        part = "head" if id(param) in head_ids else "backbone"
        kind = "biases" if name.rsplit(".", 1)[-1] == "bias" else "weights"
        groups[f"{part}_{kind}"].append(param)
    return [{"params": ps, "lr": lr * multipliers[k], "name": k} for k, ps in groups.items() if ps]


def build_optimizer(groups: list[dict[str, Any]], name: str, lr: float, momentum: float, nesterov: bool,
                    weight_decay: float) -> Optimizer:
    """Return the optimizer ``name`` over parameter ``groups`` (each group may carry its own ``lr``).

    Raises:
        ValueError: unknown optimizer name.

    """
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                               weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of 'sgd', 'adam', 'adamw', got {name!r}")


def build_scheduler(
    optimizer: Optimizer,
    name: str,
    milestones: Sequence[int] = (),
    step_size: int = 30,
    gamma: float = 0.1,
    max_epochs: int = 1,
    total_steps: int | None = None,
    poly_power: float = 0.9,
) -> LRScheduler | None:
    """Return the schedule ``name`` (``multistep``, ``step``, ``cosine``, ``poly`` or ``none``).

    ``multistep``/``step``/``cosine`` step once per epoch; ``poly`` once per optimizer step over
    ``total_steps`` (lr x (1 - step/total)^power, the IRN/WSSS schedule).

    Raises:
        ValueError: unknown schedule name, or ``poly`` without ``total_steps``.

    """
    if name == "none":
        return None
    if name == "multistep":
        return MultiStepLR(optimizer, milestones=sorted(int(m) for m in milestones), gamma=gamma)
    if name == "step":
        return StepLR(optimizer, step_size=step_size, gamma=gamma)
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=max_epochs)
    if name == "poly":
        if not total_steps:
            raise ValueError("the poly schedule needs the number of optimizer steps of the run")
        return LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total_steps) ** poly_power)
    raise ValueError(f"lr_scheduler must be multistep, step, cosine, poly or none, got {name!r}")
