"""Load the authors' released checkpoints into the library's modules, and ``wsol convert``.

``load_official_checkpoint(path, module)`` reads an official file safely (``torch.load(weights_only=True)``: the
released files are plain state dicts or dicts of tensors; a file that needs code execution is refused), unwraps
``state_dict`` / ``model`` wrappers and ``module.`` prefixes, converts the keys with the method's
``wsol_lightning.methods.<method>.official.convert_official_state_dict(official, module)`` and loads the result
strictly. ``wsol convert`` builds the module from a config the way ``wsol test`` will, loads the official file
into it and writes a Lightning checkpoint that ``wsol test -c CFG --ckpt_path OUT.ckpt`` evaluates::

    wsol convert --config configs/bas_cub.yaml --official resnet50_cub.pth.tar --output bas_cub_official.ckpt
    wsol test -c configs/bas_cub.yaml --ckpt_path bas_cub_official.ckpt
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wsol_lightning.methods.official import OfficialCheckpointError, strip_prefixes

Converter = Callable[[Mapping[str, Tensor], nn.Module], dict[str, Tensor]]
#: Converters registered in code (checked before the method's ``official`` module), by module class.
CONVERTERS: dict[type, Converter] = {}
_WRAPPERS = ("state_dict", "model")


def register_converter(cls: type, converter: Converter) -> None:
    """Use ``converter`` for modules of class ``cls`` (and subclasses), before any ``official.py``."""
    CONVERTERS[cls] = converter


def read_official_file(path: str | Path) -> dict[str, Tensor]:
    """Read an official checkpoint as a flat ``{key: tensor}`` (wrappers and ``module.`` prefixes removed).

    Raises:
        FileNotFoundError: no such file.
        OfficialCheckpointError: the file needs code execution to load, or holds no state dict of tensors.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official checkpoint not found: {path}")
    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise OfficialCheckpointError(
            f"{path} needs code execution to load (it pickles objects other than tensors and plain containers); "
            "this library never unpickles code. On a machine you trust, re-save its tensors: "
            "torch.save(torch.load(path, weights_only=False)['state_dict'], 'plain.pth') and convert that file. "
            f"({error})"
        ) from error
    while isinstance(state, Mapping):
        wrapper = next((k for k in _WRAPPERS if isinstance(state.get(k), Mapping)), None)
        if wrapper is None:
            break
        state = state[wrapper]
    if not isinstance(state, Mapping) or not state:
        raise OfficialCheckpointError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    not_tensors = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise OfficialCheckpointError(f"{path}: entries that are not tensors: {not_tensors[:10]} (top-level keys "
                                      f"{list(state)[:10]}); pass the file that holds the model's state dict")
    return strip_prefixes({str(k): v for k, v in state.items()}, ("module.",))


def find_converter(module: nn.Module) -> tuple[Converter, str]:
    """Return the converter for ``module``'s class and where it comes from.

    Raises:
        OfficialCheckpointError: the method has no converter (yet).

    """
    for cls in type(module).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls], f"{CONVERTERS[cls].__module__}.{CONVERTERS[cls].__qualname__}"
    parts = type(module).__module__.split(".")
    if parts[:2] != ["wsol_lightning", "methods"] or len(parts) < 3:
        raise OfficialCheckpointError(f"{type(module).__name__} is not a wsol_lightning method: no official format")
    name = f"wsol_lightning.methods.{parts[2]}.official"
    try:
        official = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            raise
        official = None
    converter = getattr(official, "convert_official_state_dict", None)
    if converter is None:
        raise OfficialCheckpointError(
            f"{type(module).__name__} has no converter for the authors' checkpoints yet ({name}."
            "convert_official_state_dict is missing)"
        )
    return converter, f"{name}.convert_official_state_dict"


def load_official_checkpoint(path: str | Path, module: nn.Module) -> dict[str, str | int]:
    """Load the authors' checkpoint ``path`` into ``module`` (strict) and return its provenance.

    Args:
        path: the released file (a state dict, possibly under ``state_dict``/``model``, keys maybe ``module.``).
        module: a library module built with the checkpoint's architecture (backbone, classes, ...).

    Returns:
        ``{"file", "sha256", "converter", "num_tensors"}``.

    Raises:
        OfficialCheckpointError: unreadable without code execution, no converter, or keys/shapes that do not match
            (every offending key named by the converter).

    """
    official = read_official_file(path)
    converter, where = find_converter(module)
    state = converter(official, module)
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise OfficialCheckpointError(f"{path}: {where} returned a state dict that does not match "
                                      f"{type(module).__name__}: missing {result.missing_keys[:10]}, unexpected "
                                      f"{result.unexpected_keys[:10]}")
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"file": str(Path(path).resolve()), "sha256": digest, "converter": where, "num_tensors": len(official)}


def checkpoint_of(module: nn.Module, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """A Lightning checkpoint dict of ``module`` that ``wsol test --ckpt_path`` reads (weights-only safe)."""
    import lightning

    hparams = {k: v for k, v in dict(getattr(module, "hparams", {})).items() if k != "_instantiator"}
    for key in [k for k in hparams if k == "pretrained" or k.endswith("_pretrained")]:
        hparams[key] = False  # the weights are in the checkpoint: never fetch a backbone again
    return {"state_dict": module.state_dict(), "hyper_parameters": hparams, "epoch": 0, "global_step": 0,
            "pytorch-lightning_version": lightning.__version__, "official": dict(provenance)}


def convert_main(args: Sequence[str], cli_class: Callable[..., Any]) -> Path:
    """``wsol convert --config CFG [--model.* overrides] --official FILE --output OUT.ckpt``; returns OUT.

    ``cli_class`` is the ``wsol`` LightningCLI (passed by ``cli.main``, so this module never imports the CLI).
    """
    parser = argparse.ArgumentParser(
        prog="wsol convert", description="Convert an official checkpoint into a checkpoint `wsol test` reads; "
        "every other argument (--config, --model.*, --data.*) builds the module as `wsol test` would.")
    parser.add_argument("--official", type=Path, required=True, help="the authors' released checkpoint")
    parser.add_argument("--output", type=Path, required=True, help="the Lightning checkpoint to write")
    known, rest = parser.parse_known_args(list(args))
    cli = cli_class(args=[*rest, "--model.init_args.pretrained", "false", "--trainer.logger", "false"], run=False)
    provenance = load_official_checkpoint(known.official, cli.model)
    known.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = known.output.with_suffix(known.output.suffix + ".tmp")
    torch.save(checkpoint_of(cli.model, provenance), tmp)
    tmp.replace(known.output)
    print(f"wrote {known.output}: {provenance['num_tensors']} official tensors from {known.official} "
          f"({provenance['converter']})")
    return known.output
