"""Golden parity fixtures: seeded official-format weights, compact fixture files, tolerance checks.

A parity tool (``tools/parity/<repo>.py``) builds an official model, lists its state-dict keys and
shapes, fills them with :func:`seeded_state_dict`, runs it on seeded inputs and stores the official
numbers with :func:`save_fixture`. The test rebuilds the *same* official-format state dict from the
stored key/shape list and seed, converts it to the library's modules and compares with
:func:`assert_matches`. No official code and no weights are stored: only the key/shape list, the seed
and the numbers the official code produced.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

KeyShapes = Sequence[tuple[str, Sequence[int]]]


def _key_seed(seed: int, key: str) -> int:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seeded_state_dict(key_shapes: KeyShapes, seed: int, dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
    """Draw an official-format state dict from ``(key, shape)`` pairs, reproducibly.

    Every tensor has its own generator seeded from ``(seed, key)``, so the values do not depend on
    the order of the keys or on which other keys exist. Scales keep a deep network finite:

    * conv / linear weights (ndim >= 2): normal with std ``sqrt(2 / fan_in)`` (He);
    * ``running_var``: uniform [0.5, 1.5]; ``running_mean``: normal, std 0.1;
    * other 1-D ``weight`` (norm scales): uniform [0.5, 1.5]; ``bias``: normal, std 0.1;
    * ``num_batches_tracked``: 0 (int64).

    Args:
        key_shapes: ``(key, shape)`` pairs in the official state dict's order.
        seed: the fixture's weight seed.
        dtype: floating dtype of the drawn tensors.

    Returns:
        ``{key: tensor}`` in the given order.

    """
    state: dict[str, Tensor] = {}
    for key, shape in key_shapes:
        shape = tuple(int(s) for s in shape)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.long)
            continue
        gen = torch.Generator().manual_seed(_key_seed(seed, key))
        leaf = key.rsplit(".", 1)[-1]
        if len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            value = torch.randn(shape, generator=gen, dtype=torch.float64) * math.sqrt(2.0 / max(fan_in, 1))
        elif leaf == "running_var" or (leaf == "weight" and len(shape) == 1):
            value = torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5
        else:  # running_mean, bias and anything else 1-D / scalar
            value = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.1
        state[key] = value.to(dtype)
    return state


def seeded_inputs(shape: Sequence[int], seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Normal inputs ``shape`` from a generator seeded with ``seed`` (the fixture's input seed)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(tuple(int(s) for s in shape), generator=gen, dtype=torch.float64).to(dtype)


class SeededDropout:
    """A stand-in for ``F.dropout(input, p, training)`` whose masks are drawn from one seed, call after call.

    Each training call keeps the elements where ``torch.rand(input.shape) >= p`` (from the instance's generator,
    in ``input``'s dtype) and scales them by ``1 / (1 - p)``, as dropout does. A reference model and a library
    model that call their dropouts in the same order with the same shapes get the same masks; use
    :meth:`patch` to route a module's ``nn.Dropout`` layers through it.

    Args:
        seed: seed of the masks (stored in the fixture).

    """

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
        """Dropout of ``input`` with this instance's next mask (the identity when not ``training``)."""
        if not training or p == 0:
            return input
        keep = torch.rand(input.shape, generator=self.generator, dtype=input.dtype) >= p
        return input * keep.to(input.dtype) / (1.0 - p)

    def patch(self, module: torch.nn.Module) -> None:
        """Make every ``nn.Dropout`` inside ``module`` draw its masks from this instance (in forward order)."""
        for layer in module.modules():
            if isinstance(layer, torch.nn.Dropout):
                layer.forward = lambda x, layer=layer: self(x, layer.p, layer.training)  # type: ignore[method-assign]


def key_shapes_of(state_dict: Mapping[str, Tensor]) -> list[tuple[str, list[int]]]:
    """The ``(key, shape)`` list of a state dict, the form stored in fixtures."""
    return [(k, list(v.shape)) for k, v in state_dict.items()]


def save_fixture(path: str | Path, fixture: Mapping[str, Any]) -> int:
    """Write ``fixture`` (tensors, numbers, strings, lists, dicts) atomically; return its size in bytes.

    Tensors are stored contiguous and cloned, so a slice never drags its whole storage into the file.
    """

    def compact(value: Any) -> Any:
        if isinstance(value, Tensor):
            return value.detach().cpu().contiguous().clone()
        if isinstance(value, Mapping):
            return {str(k): compact(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [compact(v) for v in value]
        return value

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(compact(fixture), tmp)
    tmp.replace(path)
    return path.stat().st_size


def load_fixture(path: str | Path) -> dict[str, Any]:
    """Read a fixture written by :func:`save_fixture` (``weights_only``: never unpickles code)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def assert_matches(actual: Tensor | float, expected: Tensor | float, rtol: float, name: str,
                   atol: float = 0.0) -> None:
    """Require ``|actual - expected| <= atol + rtol * max|expected|`` elementwise, naming the cell.

    The relative scale is the largest magnitude of ``expected`` (a gradient slice with values near zero
    is judged against its own scale, not elementwise). Shapes must agree exactly.

    Raises:
        AssertionError: naming ``name``, the shapes or the largest difference and where it is.

    """
    a = torch.as_tensor(actual).detach().cpu().to(torch.float64)
    e = torch.as_tensor(expected).detach().cpu().to(torch.float64)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {tuple(a.shape)} != official {tuple(e.shape)}")
    if a.numel() == 0:
        return
    scale = float(e.abs().max())
    diff = (a - e).abs()
    worst = float(diff.max())
    if not math.isfinite(worst) or worst > atol + rtol * scale:
        where = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape)) if diff.ndim else ()
        raise AssertionError(
            f"{name}: max |diff| {worst:.3e} at {where} exceeds atol {atol:g} + rtol {rtol:g} x scale {scale:.3e}"
        )
