"""Converting wsolevaluation checkpoints (``main.py``'s ``{"state_dict": model.state_dict(), ...}``).

The reference's trunks keep torchvision's names (``conv1``, ``layer3.2.conv1``, ``features.17``,
``Mixed_6e.branch1x1.conv``), which are timm's names too; a method renames a few trunk blocks (SPG's
``SPG_A1`` = ``layer3.0``) and adds its own heads. :func:`convert_wsoleval_state_dict` maps trunk keys
through those names and head keys through a prefix table, with the strict checks of
:func:`~wsol_lightning.methods.official.remap_strict`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from wsol_lightning.methods.bcam.official import _official_trunk_name
from wsol_lightning.methods.official import fill_batches_tracked, remap_strict, strip_prefixes

#: ``(pattern, replacement)`` pairs rewriting an official trunk key to its torchvision name.
Aliases = Sequence[tuple[str, str | Callable[[re.Match[str]], str]]]


def unwrap_checkpoint(official: Mapping[str, Any], source: str) -> dict[str, Tensor]:
    """The tensors of ``official`` or of its ``state_dict`` entry, ``module.`` prefixes removed."""
    inner = official.get("state_dict", official)
    if not isinstance(inner, Mapping):
        raise TypeError(f"{source}: 'state_dict' is a {type(inner).__name__}, not a mapping")
    return strip_prefixes({k: v for k, v in inner.items() if isinstance(v, Tensor)})


def wsoleval_key_map(module: nn.Module, official_keys: Sequence[str], heads: Mapping[str, str],
                     aliases: Aliases = ()) -> dict[str, str]:
    """Map each official key to a library key of ``module`` (a ``<no library key ...>`` marker if none).

    Args:
        module: the LightningModule (its network under ``net``, the trunk under ``net.trunk``).
        official_keys: keys of the official state dict.
        heads: official module prefix (``classifier_A.0``) -> library prefix (``net.classifier_a.0``).
        aliases: rewrites of official trunk names to torchvision names, applied in order.

    """
    trunk = {}
    for key in module.state_dict():
        name = _official_trunk_name(key)
        if name is not None:
            trunk[name] = key
    mapping = {}
    for key in official_keys:
        prefix, _, leaf = key.rpartition(".")
        if prefix in heads:
            mapping[key] = f"{heads[prefix]}.{leaf}"
            continue
        name = key
        for pattern, replacement in aliases:
            name = re.sub(pattern, replacement, name)
        mapping[key] = trunk.get(name, f"<no library key for {key}>")
    return mapping


def convert_wsoleval_state_dict(official: Mapping[str, Any], module: nn.Module, heads: Mapping[str, str],
                                aliases: Aliases = (), source: str = "official checkpoint") -> dict[str, Tensor]:
    """Return ``module.state_dict()``'s keys filled from a wsolevaluation state dict (or checkpoint dict).

    The library's own buffers (operating thresholds) keep the module's values; ``num_batches_tracked``
    absent from an old file is filled with 0.

    Raises:
        OfficialCheckpointError: unknown or missing keys or shape mismatches, each named.

    """
    state = unwrap_checkpoint(official, source)
    mapping = wsoleval_key_map(module, list(state), heads, aliases)
    target = module.state_dict()

    def own(key: str) -> Tensor | None:
        if key.endswith("num_batches_tracked"):
            return fill_batches_tracked(key)
        return None if key.startswith("net.") else target[key].clone()

    return remap_strict(state, target, mapping.__getitem__, source=source, fill_missing=own)
