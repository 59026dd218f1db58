"""Shared pieces of the converters from the authors' released checkpoints to the library's modules.

Each method has ``methods/<name>/official.py`` with
``convert_official_state_dict(official: Mapping[str, Tensor], module) -> dict[str, Tensor]``, which
renames the official keys onto ``module.state_dict()``'s keys. :func:`remap_strict` does the checking
every converter needs: every official key used or explicitly ignored, every library key filled, every
shape equal; anything else is an :class:`OfficialCheckpointError` naming the keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor


class OfficialCheckpointError(ValueError):
    """An official checkpoint does not match the module it is converted into (names the keys)."""


def strip_prefixes(state_dict: Mapping[str, Tensor], prefixes: Iterable[str] = ("module.",)) -> dict[str, Tensor]:
    """Remove DataParallel/DDP-style prefixes (``module.``) from every key that has one."""
    prefixes = tuple(prefixes)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out


def remap_strict(
    official: Mapping[str, Tensor],
    target: Mapping[str, Tensor],
    rename: Callable[[str], str | None],
    source: str = "official checkpoint",
    fill_missing: Callable[[str], Tensor | None] | None = None,
) -> dict[str, Tensor]:
    """Rename ``official`` keys onto ``target``'s keys with strict checks.

    Args:
        official: the official state dict (prefixes already stripped).
        target: the library module's ``state_dict()`` (keys, shapes and dtypes to fill).
        rename: official key -> library key, or ``None`` for a key deliberately not used (e.g. an
            official layer the library does not have, such as an unused auxiliary head).
        source: how to name the official file in errors.
        fill_missing: library key -> value for library keys the official format has no tensor for
            (e.g. ``num_batches_tracked``), or ``None`` to leave the key missing (an error).

    Returns:
        A state dict with exactly ``target``'s keys, each cast to ``target``'s dtype.

    Raises:
        OfficialCheckpointError: unknown official keys, missing library keys, two official keys mapped to
            one library key, or a shape mismatch; every offending key is named.

    """
    out: dict[str, Tensor] = {}
    unknown, duplicate, bad_shape = [], [], []
    for key, value in official.items():
        new_key = rename(key)
        if new_key is None:
            continue
        if new_key not in target:
            unknown.append(f"{key} -> {new_key}")
            continue
        if new_key in out:
            duplicate.append(new_key)
            continue
        expected = target[new_key]
        if tuple(value.shape) != tuple(expected.shape):
            bad_shape.append(f"{key} {tuple(value.shape)} vs {new_key} {tuple(expected.shape)}")
            continue
        out[new_key] = value.detach().to(dtype=expected.dtype) if torch.is_floating_point(expected) else value
    missing = []
    for key in target:
        if key in out:
            continue
        value = fill_missing(key) if fill_missing is not None else None
        if value is None:
            missing.append(key)
        else:
            out[key] = value
    problems = [
        f"{what}: {keys[:20]}" + (f" ... ({len(keys)} in all)" if len(keys) > 20 else "")
        for what, keys in (("official keys with no place in the module", unknown),
                           ("module keys the checkpoint does not fill", missing),
                           ("module keys filled twice", duplicate), ("shape mismatches", bad_shape))
        if keys
    ]
    if problems:
        raise OfficialCheckpointError(f"{source}: " + "; ".join(problems))
    return {key: out[key] for key in target}


def fill_batches_tracked(key: str) -> Tensor | None:
    """``fill_missing`` for BatchNorm's ``num_batches_tracked`` (absent from old torchvision-era files)."""
    return torch.zeros((), dtype=torch.long) if key.endswith("num_batches_tracked") else None
