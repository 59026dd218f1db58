"""Export a trained method's network as plain weights + config, and rebuild it without Lightning state.

``python -m wsol_lightning.export runs/.../last.ckpt exported/`` (or :func:`export_network`) writes:

* ``model.safetensors``: the state dict of the method's ``nn.Module`` network (``module.net``; the
  Lightning wrapper, metrics and optimizer state are left out);
* ``config.json``: the method class, the network class, the hyperparameters, the operating threshold
  chosen on val and the class names when known.

:func:`load_network` rebuilds the ``nn.Module`` from these two files (no checkpoint, no Trainer); its
``forward(images)`` returns the method's outputs (``logits``, features, ...). :func:`load_method` rebuilds
the whole method (a LightningModule usable as a plain ``nn.Module``: ``localization_maps``,
``normalize_to_image``, ``predict_step``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def _class_path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, tuple) else str(v)))


def network_of(method: nn.Module) -> nn.Module:
    """Return the method's network: ``method.net`` (every method in :mod:`wsol_lightning.methods` has one)."""
    net = getattr(method, "net", None)
    if not isinstance(net, nn.Module):
        raise TypeError(f"{_class_path(method)} has no `net` nn.Module to export")
    return net


def export_network(method: nn.Module | str | Path, output_dir: str | Path,
                   class_names: list[str] | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` for a method or a checkpoint path.

    Args:
        method: a :class:`~wsol_lightning.methods.WSOLModule` or the path of a Lightning checkpoint.
        output_dir: folder to write (created).
        class_names: optional class names to store in the config.

    Returns:
        The output folder.

    """
    if isinstance(method, (str, Path)):
        method = load_checkpoint(method)
    net = network_of(method)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt", "wsol_lightning": str(FORMAT_VERSION)})
    hparams = dict(getattr(method, "hparams", {}))
    threshold = getattr(method, "operating_threshold", None)
    threshold = None if threshold is None or math.isnan(float(threshold)) else float(threshold)
    config = {
        "format_version": FORMAT_VERSION,
        "method": _class_path(method),
        "network": _class_path(net),
        "hparams": _jsonable(hparams),
        "operating_threshold": threshold,
        "class_names": class_names,
        "weights": WEIGHTS,
    }
    (out / CONFIG).write_text(json.dumps(config, indent=2))
    return out


def load_checkpoint(path: str | Path, method_class: type | None = None,
                    map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a Lightning checkpoint of any method, in eval mode.

    Args:
        path: checkpoint file.
        method_class: the method's class; default: read from the checkpoint (runs of the ``wsol`` CLI
            store it as ``_class_path``).
        map_location: device to load onto.

    """
    if method_class is None:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
        cls_path = ckpt.get("hyper_parameters", {}).get("_class_path")
        if cls_path is None:
            raise ValueError(f"{path}: the checkpoint does not name its class (not saved by the `wsol` CLI); "
                             "pass method_class=<Method>")
        method_class = _import(cls_path)
    return method_class.load_from_checkpoint(str(path), map_location=map_location).eval()


def read_config(path: str | Path) -> dict[str, Any]:
    """Read the ``config.json`` of an export folder."""
    config = json.loads((Path(path) / CONFIG).read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported export format {config.get('format_version')}")
    return config


def load_method(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the whole method from an export folder (weights loaded, eval mode, threshold restored)."""
    config = read_config(path)
    hparams = {k: v for k, v in config["hparams"].items() if not k.startswith("_")}
    hparams["pretrained"] = False  # the exported weights replace any pretrained ones
    method = _import(config["method"])(**hparams)
    state = load_file(str(Path(path) / config["weights"]), device=str(map_location))
    network_of(method).load_state_dict(state, strict=True)
    if config.get("operating_threshold") is not None and hasattr(method, "operating_threshold"):
        method.operating_threshold.fill_(float(config["operating_threshold"]))
    return method.to(map_location).eval()


def load_network(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the method's ``nn.Module`` network from an export folder (eval mode).

    The network is built by its method from the stored hyperparameters (``pretrained`` forced off), then
    the exported weights are loaded with ``strict=True``.
    """
    return network_of(load_method(path, map_location))


def main(argv: list[str] | None = None) -> None:
    """``python -m wsol_lightning.export CKPT OUTPUT_DIR``."""
    parser = argparse.ArgumentParser(
        description="Export a wsol_lightning checkpoint as safetensors + config.json")
    parser.add_argument("checkpoint")
    parser.add_argument("output_dir")
    args = parser.parse_args(argv)
    out = export_network(args.checkpoint, args.output_dir)
    print(f"exported {args.checkpoint} -> {out / WEIGHTS}, {out / CONFIG}")


if __name__ == "__main__":  # pragma: no cover
    main()
