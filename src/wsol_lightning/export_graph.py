"""The map-producing network as a graph: ONNX (checked with onnxruntime) and TorchScript.

:class:`MapGraph` wraps a method: ``images (B, 3, H, W)`` (normalised) -> ``logits (B, C)``, ``maps (B, H, W)``
(the method's localisation map of the top-1 class, upsampled to the input size with the method's
``map_interpolation`` and min-max normalised to [0, 1]: what ``predict_step`` returns) and ``raw_maps (B, h, w)``
(the same map before upsampling). The batch axis is dynamic, and so are H and W unless the exporter cannot keep
them dynamic (then the example size is fixed and the sidecar says so).

Maps computed with gradients (B-CAM's official gradient map, any method with ``maps_need_autograd``) are first
traced with :func:`torch.fx.experimental.proxy_tensor.make_fx`, which records the backward pass as plain ops, so
the exported graph computes the same gradient map without autograd.

``onnx``, ``onnxruntime`` and ``onnxscript`` are optional (``pip install "wsol_lightning[export]"``); they are
imported only when an ONNX export is asked for.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wsol_lightning.metrics.functional import normalize_maps

ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.torchscript.pt"
INPUTS = ("images",)
OUTPUTS = ("logits", "maps", "raw_maps")


class ExportError(RuntimeError):
    """A method cannot be exported, or the exported graph does not reproduce PyTorch's outputs."""


def require_onnx() -> Any:
    """Import onnxruntime (and check onnx, onnxscript are there), or raise a clear error saying what to install."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(f"ONNX export needs onnx, onnxruntime and onnxscript ({err.name} is missing): "
                          'pip install "wsol_lightning[export]" (or pip install onnx onnxruntime onnxscript)') from None
    return onnxruntime


def _conv_input_grad(grad_output: Tensor, inputs: Tensor, weight: Tensor, bias_sizes: Any, stride: list[int],
                     padding: list[int], dilation: list[int], transposed: bool, output_padding: list[int],
                     groups: int, output_mask: list[bool]) -> tuple[Tensor | None, None, None]:
    """``aten.convolution_backward`` for the input only, as a transposed convolution (ONNX ``ConvTranspose``)."""
    if transposed or list(output_mask)[1:] != [False, False]:
        raise ExportError("a traced map differentiates a transposed convolution or a weight: not exportable")
    extra = [inputs.shape[2 + i] - ((grad_output.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                    + dilation[i] * (weight.shape[2 + i] - 1) + 1) for i in range(len(stride))]
    grad = torch.ops.aten.convolution(grad_output, weight, None, stride, padding, dilation, True, extra, groups)
    return (grad if output_mask[0] else None), None, None


def traced_map_function(method: nn.Module, outputs: dict[str, Tensor], classes: Tensor) -> nn.Module:
    """``method.localization_maps`` traced with its backward pass as plain ops (a ``GraphModule``).

    Args:
        method: the method (its parameters are constants of the trace).
        outputs: example ``forward`` outputs (every size becomes a symbol: nothing is fixed).
        classes: example classes ``(B,)``.

    """
    import torch.fx.experimental._config as fx_config
    from torch.fx.experimental.proxy_tensor import make_fx

    table = {torch.ops.aten.convolution_backward.default: _conv_input_grad}
    with fx_config.patch(use_duck_shape=False):  # equal example sizes must stay distinct symbols
        return make_fx(lambda out, cls: method.localization_maps(out, cls), tracing_mode="symbolic",
                       _allow_non_fake_inputs=True, decomposition_table=table)(outputs, classes)


class MapGraph(nn.Module):
    """``images -> (logits, maps, raw_maps)`` of the top-1 class (see the module docstring).

    Args:
        method: a :class:`~wsol_lightning.methods.WSOLModule` in eval mode.
        map_function: replaces ``method.localization_maps`` (e.g. :func:`traced_map_function`'s graph).

    """

    def __init__(self, method: nn.Module, map_function: nn.Module | None = None) -> None:
        super().__init__()
        self.method = method
        self.map_function = map_function
        self.interpolation = str(getattr(method, "map_interpolation", "bicubic"))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(B, 3, H, W)`` -> logits ``(B, C)``, maps ``(B, H, W)`` in [0, 1], raw maps ``(B, h, w)``."""
        outputs = self.method(images)
        logits = outputs["logits"]
        classes = logits.argmax(dim=1)
        mapper = self.map_function if self.map_function is not None else self.method.localization_maps
        raw = mapper(outputs, classes).to(logits.dtype)
        up = F.interpolate(raw[:, None], size=images.shape[-2:], mode=self.interpolation, align_corners=False)
        return logits, normalize_maps(up[:, 0]), raw


@contextmanager
def frozen(method: nn.Module) -> Iterator[None]:
    """Parameters without gradients while exporting (constants of the graph); their flags are restored after."""
    flags = [(p, p.requires_grad) for p in method.parameters()]
    try:
        for param, _ in flags:
            param.requires_grad_(False)
        yield
    finally:
        for param, flag in flags:
            param.requires_grad_(flag)


def build_graph(method: nn.Module, example: Tensor) -> MapGraph:
    """The :class:`MapGraph` of ``method`` (its maps traced with their backward pass when they need autograd).

    Call it inside :func:`frozen` (the trace takes the parameters as constants).

    Raises:
        ExportError: the method gives no map (e.g. ORNet's ``evaluator`` phase).

    """
    method.eval()
    with torch.no_grad():
        outputs = method(example)
        classes = outputs["logits"].argmax(dim=1)
        try:
            method.localization_maps(outputs, classes)
        except (RuntimeError, NotImplementedError) as err:
            raise ExportError(f"{type(method).__name__} gives no localisation map to export: {err}") from None
    if not getattr(method, "maps_need_autograd", False):
        return MapGraph(method).eval()
    return MapGraph(method, traced_map_function(method, outputs, classes)).eval()


def export_onnx(method: nn.Module, path: str | Path, example: Tensor, opset: int = 18,
                exporter: str = "auto", dynamic_hw: bool = True) -> dict[str, Any]:
    """Export :func:`build_graph` of ``method`` to ONNX.

    Args:
        method: the method (eval mode).
        path: the ``.onnx`` file to write.
        example: a normalised example batch ``(B >= 2, 3, H, W)``.
        opset: ONNX opset.
        exporter: ``"dynamo"`` (torch.export), ``"legacy"`` (``dynamo=False``, TorchScript-based: much faster,
            not for maps that need autograd) or ``"auto"`` (dynamo, then legacy if dynamo fails).
        dynamic_hw: keep H and W dynamic (else only the batch is).

    Returns:
        What was exported: ``exporter``, ``opset``, ``dynamic_hw``.

    """
    require_onnx()
    if example.shape[0] < 2:
        raise ExportError("the example batch needs at least 2 images (a batch of 1 would fix the batch size)")
    with frozen(method):
        return _export_onnx(method, Path(path), example, opset, exporter, dynamic_hw)


def _export_onnx(method: nn.Module, path: Path, example: Tensor, opset: int, exporter: str,
                 dynamic_hw: bool) -> dict[str, Any]:
    graph = build_graph(method, example)
    traced = graph.map_function is not None
    if exporter == "legacy" and traced:
        raise ExportError(f"{type(method).__name__}'s maps need autograd: export them with exporter='dynamo'")
    order = {"auto": ["dynamo", "legacy"], "dynamo": ["dynamo"], "legacy": ["legacy"]}.get(exporter)
    if order is None:
        raise ExportError(f"exporter must be auto, dynamo or legacy, got {exporter!r}")
    errors = []
    for kind in order if not traced else ["dynamo"]:
        for hw in ([dynamic_hw, False] if dynamic_hw and kind == "dynamo" else [dynamic_hw]):
            try:
                _run_exporter(graph, path, example, opset, kind, hw)
                return {"exporter": kind, "opset": opset, "dynamic_hw": hw}
            except Exception as err:  # noqa: BLE001 - torch.onnx raises many types; all are reported below
                errors.append(f"{kind} (dynamic H/W {hw}): {type(err).__name__}: {str(err)[:400]}")
    raise ExportError(f"ONNX export of {type(method).__name__} failed:\n" + "\n".join(errors))


def _run_exporter(graph: MapGraph, path: Path, example: Tensor, opset: int, kind: str, dynamic_hw: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "dynamo":
        dims = {0: torch.export.Dim("batch")}
        if dynamic_hw:
            dims.update({2: torch.export.Dim("height"), 3: torch.export.Dim("width")})
        torch.onnx.export(graph, (example,), str(path), input_names=list(INPUTS), output_names=list(OUTPUTS),
                          dynamic_shapes=(dims,), opset_version=opset, dynamo=True, verbose=False,
                          external_data=False)
        return
    axes = {"images": {0: "batch", **({2: "height", 3: "width"} if dynamic_hw else {})}, "logits": {0: "batch"},
            "maps": {0: "batch"}, "raw_maps": {0: "batch"}}
    torch.onnx.export(graph, (example,), str(path), input_names=list(INPUTS), output_names=list(OUTPUTS),
                      dynamic_axes=axes, opset_version=opset, dynamo=False)


def export_torchscript(method: nn.Module, path: str | Path, example: Tensor) -> dict[str, Any]:
    """Trace :func:`build_graph` of ``method`` with ``torch.jit.trace`` and save it (``torch.jit.load`` reads it).

    TorchScript is deprecated in recent PyTorch (its FutureWarning is silenced here); ONNX is the format that lasts.
    """
    from lightning.pytorch.core.module import _jit_is_scripting  # Lightning's own to_torchscript guard

    if getattr(method, "maps_need_autograd", False):  # jit.trace would freeze the traced backward's sizes
        raise ExportError(f"{type(method).__name__}'s maps need autograd: TorchScript tracing would fix the batch "
                          "size; export ONNX (--format onnx) instead")

    with frozen(method), torch.no_grad(), _jit_is_scripting(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
        scripted = torch.jit.trace(build_graph(method, example), (example,), check_trace=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(path))
    return {"exporter": "torch.jit.trace"}


def onnx_outputs(path: str | Path, images: Tensor) -> list[Tensor]:
    """Run an exported ``.onnx`` file with onnxruntime (CPU) on ``images``."""
    runtime = require_onnx()
    session = runtime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(out) for out in session.run(None, {"images": images.detach().cpu().numpy()})]


def max_differences(reference: list[Tensor] | tuple[Tensor, ...], got: list[Tensor]) -> dict[str, float]:
    """Largest absolute difference per output name (:data:`OUTPUTS`)."""
    return {name: float((r.detach().float().cpu() - g.float()).abs().max())
            for name, r, g in zip(OUTPUTS, reference, got)}
