"""Shared by the parity tools of the wsolevaluation baselines (HaS, CutMix, ADL, ACoL, SPG).

Loads the reference's ``wsol`` package (clovaai/wsolevaluation) from a local clone at run time, builds its
models with seeded official-format weights in float64 on the CPU, replaces its randomness by fixed draws
(in memory only) and records the numbers a fixture stores. Nothing here is official code.

Typical use in a tool::

    wsol = load_wsol(clone)                       # patches .cuda() away, float64 default dtype
    model = build_model(wsol, "resnet50", "adl", num_classes=200, adl_drop_rate=0.75)
    key_shapes, state = seed_model(model, WEIGHT_SEED)
    adl = sys.modules["wsol.method.adl"]
    with fixed_attr(adl, "torch", proxy(torch, rand=draws([u1, u2, u3]))):  # ADL's torch.rand only
        ...
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from _official import gradient_record, import_from
from torch import Tensor, nn

from wsol_lightning.testing import SeededDropout, key_shapes_of, seeded_state_dict

#: reference defaults (config.py) passed to every model constructor; a tool overrides what it varies.
MODEL_DEFAULTS: dict[str, Any] = {
    "dataset_name": "CUB", "large_feature_map": False, "pretrained_path": None,
    "adl_drop_rate": 0.75, "adl_drop_threshold": 0.9, "acol_drop_threshold": 0.7,
}
BATCH, IMAGE_SIZE = 2, 224
#: input side per architecture: InceptionV3 at 96 px (6x6 maps after its 3x3/2 pool) keeps its cells fast
IMAGE_SIZES = {"resnet50": IMAGE_SIZE, "vgg16": IMAGE_SIZE, "inception_v3": 96}
#: seed of the InceptionV3 heads' dropout masks (``InceptionCam``, ``InceptionSpg``: three ``F.dropout`` per forward)
DROPOUT_SEED = 2468
WEIGHT_SEED, INPUT_SEED, LABEL_SEED = 1234, 5678, 91
SLICE_LEN = 16


def patch_environment() -> None:
    """CPU float64 run of the GPU reference: ``.cuda()`` is the identity (in memory only)."""
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.set_default_dtype(torch.float64)


def load_wsol(clone: Path) -> types.ModuleType:
    """Import the reference's ``wsol`` package (and ``wsol.method``) from ``clone`` after patching the environment."""
    patch_environment()
    for name in [n for n in sys.modules if n == "wsol" or n.startswith("wsol.")]:
        del sys.modules[name]
    wsol = import_from(Path(clone), "wsol")
    import_from(Path(clone), "wsol.method")
    return wsol


def build_model(wsol: types.ModuleType, architecture: str, architecture_type: str, num_classes: int,
                **overrides: Any) -> nn.Module:
    """The reference model ``wsol.<architecture>(architecture_type=...)`` without pretrained weights."""
    kwargs = {**MODEL_DEFAULTS, **overrides}
    return wsol.__dict__[architecture](architecture_type=architecture_type, pretrained=False,
                                       num_classes=num_classes, **kwargs)


def seed_model(model: nn.Module, seed: int = WEIGHT_SEED) -> tuple[list[tuple[str, list[int]]], dict[str, Tensor]]:
    """Fill ``model`` with :func:`seeded_state_dict` over its own key/shape list; return the list and the state."""
    key_shapes = key_shapes_of(model.state_dict())
    state = seeded_state_dict(key_shapes, seed)
    model.load_state_dict(state, strict=True)
    return key_shapes, state


def seeded_batch(num_classes: int, batch: int = BATCH, size: int = IMAGE_SIZE) -> tuple[Tensor, Tensor]:
    """The fixture inputs: normal images ``(batch, 3, size, size)`` and labels ``(batch,)`` from the fixed seeds."""
    from wsol_lightning.testing import seeded_inputs

    images = seeded_inputs((batch, 3, size, size), INPUT_SEED)
    labels = torch.randint(0, num_classes, (batch,), generator=torch.Generator().manual_seed(LABEL_SEED))
    return images, labels


def draws(values: Iterable[Any]) -> Callable[..., Any]:
    """A stand-in for a random function that returns ``values`` one per call (and fails loudly past the end)."""
    queue = iter(list(values))

    def next_draw(*args: Any, **kwargs: Any) -> Any:
        try:
            return next(queue)
        except StopIteration as err:
            raise RuntimeError("the reference drew more random numbers than the fixture provides") from err

    return next_draw


def proxy(real: Any, **overrides: Any) -> Any:
    """An object that answers ``overrides`` and delegates every other attribute to ``real`` (e.g. a module).

    Replacing one reference module's ``torch`` (or ``np``, ``random``) by a proxy changes the draws of that
    module only, never the global library.
    """

    class _Proxy:
        def __getattr__(self, name: str) -> Any:
            return overrides[name] if name in overrides else getattr(real, name)

    return _Proxy()


@contextlib.contextmanager
def fixed_attr(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Temporarily replace ``owner.name`` (e.g. a module's ``random``) by ``value``."""
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


@contextlib.contextmanager
def seeded_inception_dropout(seed: int = DROPOUT_SEED) -> Iterator[None]:
    """Make ``wsol.inception``'s ``F.dropout`` draw its masks from :class:`SeededDropout` ``seed`` (in memory only)."""
    inception = sys.modules["wsol.inception"]
    with fixed_attr(inception, "F", proxy(inception.F, dropout=SeededDropout(seed))):
        yield


def grad_record(model: nn.Module, slice_names: Sequence[str] = ()) -> dict[str, Any]:
    """Gradient norm of every parameter that has one (official names, in order) and slices of ``slice_names``."""
    names, norms, slices = gradient_record(model, lambda name: name in slice_names, SLICE_LEN)
    return {"grad_names": names, "grad_norms": norms, "grad_slices": slices}


def test_cams(model: nn.Module, images: Tensor, labels: Tensor, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Eval logits and the raw CAMs ``model(images, labels, return_cam=True)`` with fresh weights ``state``."""
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(images)["logits"].clone()
        cams = model(images, labels, return_cam=True).clone()
    return {"eval_logits": logits, "cams": cams}


def fixture_header(cell: str, architecture: str, architecture_type: str, num_classes: int,
                   key_shapes: list[tuple[str, list[int]]], labels: Tensor, **extra: Any) -> dict[str, Any]:
    """The common fields of a wsolevaluation fixture (no weights: key/shape list and seeds only)."""
    return {"cell": cell, "architecture": architecture, "architecture_type": architecture_type,
            "num_classes": num_classes, "key_shapes": key_shapes, "weight_seed": WEIGHT_SEED,
            "input_seed": INPUT_SEED, "label": labels, "batch": BATCH, "image_size": IMAGE_SIZE,
            "dtype": "float64", **extra}
