"""``wsol export``: a checkpoint (or a ``save_pretrained`` folder) -> a folder that travels.

``wsol export --ckpt_path CK --format onnx safetensors torchscript --output DIR`` writes, in ``DIR``:

* ``model.onnx`` (``--format onnx``): :class:`~wsol_lightning.export_graph.MapGraph` (images -> logits, maps,
  raw maps), checked against PyTorch with onnxruntime (max abs difference <= ``--atol`` on the example batch and
  on a batch of another size);
* ``model.torchscript.pt`` (``--format torchscript``): the same graph traced with ``torch.jit.trace``;
* ``model.safetensors`` + ``config.json`` (``--format safetensors``): the Hub-style folder
  ``<Method>.from_pretrained(DIR)`` reads (:mod:`wsol_lightning.methods.pretrained`);
* ``wsol.json``: the checkpoint's settings (class names, eval image size, mean/std, method, operating threshold,
  map interpolation), the graph's inputs/outputs and the measured differences;
* ``README.md``: a generated model card.

Checkpoints are read with ``weights_only=True``; nothing in a file is executed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wsol_lightning.atomic import atomic_write_text
from wsol_lightning.export_graph import (
    INPUTS,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    ExportError,
    MapGraph,
    export_onnx,
    export_torchscript,
    max_differences,
    onnx_outputs,
)
from wsol_lightning.methods.model_card import MAP_DESCRIPTIONS, build_card, citation_of
from wsol_lightning.methods.pretrained import (
    CARD,
    CONFIG,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS,
    init_args_of,
    plain,
    settings_of,
)

SIDECAR = "wsol.json"
FORMATS = ("safetensors", "onnx", "torchscript")
OUTPUT_DOC = {
    "logits": "float32 (batch, num_classes)",
    "maps": "float32 (batch, height, width) in [0, 1]: the map of the top-1 class, upsampled with "
            "map_interpolation and min-max normalised (wsol predict's maps; threshold at operating_threshold)",
    "raw_maps": "float32 (batch, h, w): the same map before upsampling",
}


def load_for_export(source: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The method (eval mode) and its stored prediction settings, from a checkpoint file or a pretrained folder."""
    from wsol_lightning.export import load_checkpoint
    from wsol_lightning.methods import WSOLModule

    # a checkpoint's settings (checkpoint["wsol"]) become wsol_settings in WSOLModule.on_load_checkpoint
    method = WSOLModule.from_pretrained(source) if Path(source).is_dir() else load_checkpoint(source)
    return method, dict(method.wsol_settings or {})


def example_batch(image_size: int, batch: int = 2, width: int | None = None, seed: int = 0) -> torch.Tensor:
    """A seeded normalised-looking batch ``(batch, 3, image_size, width or image_size)``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, image_size, width or image_size, generator=generator)


def check_graph(method: nn.Module, run: Any, example: torch.Tensor, dynamic_hw: bool, atol: float) -> dict[str, Any]:
    """Compare an exported graph (``run(images) -> outputs``) with PyTorch on the example and another batch.

    ``maps`` (in [0, 1]) must agree to ``atol``; ``logits`` and ``raw_maps`` to ``atol x max(1, max |value|)``.

    Raises:
        ExportError: an output differs by more than ``atol`` (naming the output, the batch and the difference).

    """
    reference = MapGraph(method).eval()  # the method's own localization_maps (autograd where it needs it)
    size = example.shape[-1]
    batches = {"example": example, "other batch": example_batch(size, 3, seed=1)}
    if dynamic_hw:
        batches["other size"] = example_batch(size + 32, 1, width=size + 16, seed=2)
    measured = {}
    for name, images in batches.items():
        with torch.no_grad():
            expected = reference(images)
        diffs = max_differences(expected, run(images))
        # maps are in [0, 1]; logits and raw maps are compared relative to their size (float32 round-off grows)
        scales = {k: 1.0 if k == "maps" else max(1.0, float(v.detach().abs().max()))
                  for k, v in zip(diffs, expected)}
        measured[name] = {"shape": list(images.shape), "max_abs_diff": diffs, "scale": scales}
        worst = max(diffs, key=lambda k: diffs[k] / scales[k])
        if not diffs[worst] <= atol * scales[worst]:
            raise ExportError(f"the exported graph's {worst!r} differs from PyTorch by {diffs[worst]:.3g} "
                              f"(> atol {atol} x {scales[worst]:.3g}) on the {name} {tuple(images.shape)}")
    return measured


def export_folder(method: nn.Module, output: str | Path, formats: list[str], settings: dict[str, Any],
                  image_size: int | None = None, metrics: dict[str, Any] | None = None, opset: int = 18,
                  exporter: str = "auto", dynamic_hw: bool = True, atol: float = 1e-4, check: bool = True,
                  license: str = "other") -> dict[str, Any]:
    """Write the asked ``formats``, the ``wsol.json`` sidecar and the model card to ``output``.

    Returns:
        The sidecar's content.

    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ExportError(f"unknown --format {bad}; choose from {list(FORMATS)}")
    settings = settings_of(method, settings)
    size = int(image_size or settings.get("image_size") or 224)
    example = example_batch(size)
    exports: dict[str, Any] = {}
    if "safetensors" in formats:
        method.save_pretrained(out, settings=settings, metrics=metrics, license=license)
        exports["safetensors"] = {"files": [WEIGHTS, CONFIG], "load": f"{type(method).__name__}.from_pretrained"}
    if "onnx" in formats:
        info = export_onnx(method, out / ONNX_FILE, example, opset, exporter, dynamic_hw)
        if check:
            info["check_onnxruntime"] = check_graph(method, lambda x: onnx_outputs(out / ONNX_FILE, x), example,
                                                    info["dynamic_hw"], atol)
        exports["onnx"] = {"file": ONNX_FILE, **info}
    if "torchscript" in formats:
        info = export_torchscript(method, out / TORCHSCRIPT_FILE, example)
        if check:
            loaded = torch.jit.load(str(out / TORCHSCRIPT_FILE))
            info["check_torch_jit_load"] = check_graph(method, lambda x: list(loaded(x)), example, True, atol)
        exports["torchscript"] = {"file": TORCHSCRIPT_FILE, **info}
    sidecar = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "method": f"{type(method).__module__}."
        f"{type(method).__qualname__}", "init_args": init_args_of(method), "wsol": settings,
        "metrics": plain(metrics) if metrics else None,
        "graph": {"inputs": {INPUTS[0]: "float32 (batch, 3, height, width): RGB resized to image_size, "
                             "normalised with mean/std"}, "outputs": OUTPUT_DOC,
                  "map": MAP_DESCRIPTIONS.get(type(method).__name__, "the method's localisation map"),
                  "example_size": size},
        "exports": exports,
    }
    previous = _previous_exports(out / SIDECAR, sidecar["method"])
    sidecar["exports"] = {**previous, **exports}
    files = sorted({CARD, SIDECAR, *(f for f in (WEIGHTS, CONFIG, ONNX_FILE, TORCHSCRIPT_FILE) if (out / f).is_file())})
    card = build_card(type(method).__name__, sidecar["init_args"], settings, sidecar["metrics"], files,
                      citation_of(type(method)), license)
    atomic_write_text(out / SIDECAR, json.dumps(sidecar, indent=2))
    atomic_write_text(out / CARD, str(card))
    return sidecar


def _previous_exports(path: Path, method: str) -> dict[str, Any]:
    """Exports an earlier ``wsol export`` of the same method wrote to the same folder (kept in the sidecar)."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return dict(old.get("exports") or {}) if isinstance(old, dict) and old.get("method") == method else {}


def read_metrics(value: str | None) -> dict[str, Any] | None:
    """``--metrics``: a JSON object, or the path of a ``.json`` file holding one."""
    if not value:
        return None
    text = Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value
    try:
        metrics = json.loads(text)
    except json.JSONDecodeError as err:
        raise ExportError(f"--metrics {value!r}: not a JSON object or a .json file ({err.msg}, line "
                          f"{err.lineno})") from None
    if not isinstance(metrics, dict):
        raise ExportError(f"--metrics {value!r}: holds a {type(metrics).__name__}, not a JSON object")
    return metrics


def parser() -> argparse.ArgumentParser:
    """The ``wsol export`` argument parser."""
    p = argparse.ArgumentParser(prog="wsol export", description=(
        "Export a checkpoint (or a save_pretrained folder): ONNX (checked with onnxruntime), TorchScript, or the "
        "Hub-style safetensors folder, with wsol.json (class names, image size, mean/std, threshold) and a model "
        "card README.md."))
    p.add_argument("--ckpt_path", required=True, help="checkpoint file (wsol fit) or a save_pretrained folder")
    p.add_argument("--output", required=True, help="folder to write")
    p.add_argument("--format", nargs="+", default=["safetensors"], choices=FORMATS, help="what to write")
    p.add_argument("--image_size", type=int, default=None, help="example size (default: the checkpoint's, else 224)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    p.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "legacy"),
                   help="torch.onnx exporter: dynamo (torch.export), legacy (dynamo=False, faster), auto (dynamo, "
                        "then legacy)")
    p.add_argument("--static_hw", action="store_true", help="fix H and W to the example size (batch stays dynamic)")
    p.add_argument("--atol", type=float, default=1e-4,
                   help="largest difference from PyTorch accepted (maps; relative for logits/raw maps)")
    p.add_argument("--no_check", action="store_true", help="skip the onnxruntime / torch.jit.load check")
    p.add_argument("--metrics", default=None, help='known metrics for the model card: JSON or a .json file')
    p.add_argument("--license", default="other", help="Hub license id of the weights for the model card")
    return p


def main(argv: list[str] | None = None) -> None:
    """``wsol export ...`` (see :func:`parser`)."""
    from wsol_lightning.checkpoints import CheckpointError
    from wsol_lightning.methods.pretrained import PretrainedError

    args = parser().parse_args(argv)
    try:
        method, settings = load_for_export(args.ckpt_path)
        sidecar = export_folder(method, args.output, list(dict.fromkeys(args.format)), settings, args.image_size,
                                read_metrics(args.metrics), args.opset, args.exporter, not args.static_hw,
                                args.atol, not args.no_check, args.license)
    except (CheckpointError, PretrainedError, ExportError) as err:  # the message, no traceback
        sys.stderr.write(f"wsol export: error: {err}\n")
        raise SystemExit(2) from None
    print(f"wsol export: {args.ckpt_path} -> {args.output}")
    for kind, info in sidecar["exports"].items():
        checks = info.get("check_onnxruntime") or info.get("check_torch_jit_load") or {}
        worst = max((d for c in checks.values() for d in c["max_abs_diff"].values()), default=None)
        note = f" (max abs diff vs PyTorch {worst:.2e})" if worst is not None else ""
        print(f"  {kind}: {info.get('file') or ', '.join(info.get('files', []))}{note}")
    print(f"  settings: {Path(args.output) / SIDECAR}; model card: {Path(args.output) / CARD}")
