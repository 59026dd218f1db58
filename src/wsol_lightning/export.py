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

Nothing here runs code from a file: checkpoints are read with ``weights_only=True``
(:func:`wsol_lightning.checkpoints.read_checkpoint`), and the class a checkpoint or ``config.json`` names is
only used when it is an already imported :class:`~wsol_lightning.methods.WSOLModule` subclass (a file cannot
make the library import a module or call an arbitrary function). Both files are written atomically (a
temporary file renamed over the destination), so an interrupted export never leaves half a file.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from wsol_lightning.atomic import atomic_open
from wsol_lightning.checkpoints import CheckpointError, checkpoint_hparams, read_checkpoint
from wsol_lightning.methods.pretrained import plain, resolve_class

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def _class_path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_method_class(class_path: str, source: str | Path) -> type:
    """The method class a checkpoint or export names, if it is an already imported ``WSOLModule`` subclass.

    Raises:
        CheckpointError: the class is unknown or not a method (naming ``source`` and the class path).

    """
    from wsol_lightning.methods import WSOLModule  # also imports every built-in method

    return resolve_class(class_path, source, WSOLModule, CheckpointError)


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
    weights = safetensors_bytes(state, metadata={"format": "pt", "wsol_lightning": str(FORMAT_VERSION)})
    hparams = dict(getattr(method, "hparams", {}))
    threshold = getattr(method, "operating_threshold", None)
    threshold = None if threshold is None or math.isnan(float(threshold)) else float(threshold)
    config = {
        "format_version": FORMAT_VERSION,
        "method": _class_path(method),
        "network": _class_path(net),
        "hparams": plain(hparams),
        "operating_threshold": threshold,
        "class_names": class_names,
        "weights": WEIGHTS,
    }
    # Both files are written in full to temporary files before either replaces its destination.
    with atomic_open(out / WEIGHTS, "wb") as weights_file, atomic_open(out / CONFIG, "w", encoding="utf-8") as text:
        weights_file.write(weights)
        text.write(json.dumps(config, indent=2))
    return out


def load_checkpoint(path: str | Path, method_class: type | None = None,
                    map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a Lightning checkpoint of any method, in eval mode (``weights_only``: never runs code from the file).

    Args:
        path: checkpoint file.
        method_class: the method's class; default: read from the checkpoint (runs of the ``wsol`` CLI
            store it as ``_class_path``; it must be an imported ``WSOLModule`` subclass).
        map_location: device to load onto.

    Raises:
        CheckpointError: the file holds pickled code, is unreadable, or names no (or an unknown) method class.

    """
    if method_class is None:
        cls_path = checkpoint_hparams(read_checkpoint(path)).get("_class_path")
        if cls_path is None:
            raise CheckpointError(f"{path}: the checkpoint does not name its class (not saved by the `wsol` CLI); "
                                  "pass method_class=<Method>")
        method_class = resolve_method_class(cls_path, path)
    else:
        read_checkpoint(path)  # the same checks and messages before Lightning loads it
    return method_class.load_from_checkpoint(str(path), map_location=map_location, weights_only=True).eval()


def load_method(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the whole method from an export folder (weights loaded, eval mode, threshold restored).

    A ``save_pretrained`` / ``wsol export --format safetensors`` folder (format 2) is read by
    :meth:`~wsol_lightning.methods.WSOLModule.from_pretrained`.
    """
    config = json.loads((Path(path) / CONFIG).read_text())
    if config.get("format_version") == 2:
        from wsol_lightning.methods import WSOLModule

        return WSOLModule.from_pretrained(path, map_location=map_location)
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported export format {config.get('format_version')}")
    hparams = {k: v for k, v in config["hparams"].items() if not k.startswith("_")}
    hparams["pretrained"] = False  # the exported weights replace any pretrained ones
    method = resolve_method_class(config["method"], Path(path) / CONFIG)(**hparams)
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
