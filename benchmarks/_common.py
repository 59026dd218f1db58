"""Helpers shared by the benchmarks: the machine line, a real synthetic batch, robust timing."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def machine() -> str:
    """One line naming the CPU, cores, threads, load and library versions (print it with every result)."""
    cpu = platform.processor() or "cpu"
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    import lightning

    return (f"{cpu}; {os.cpu_count()} cores; torch {torch.__version__} ({torch.get_num_threads()} threads); "
            f"lightning {lightning.__version__}; load average {load:.1f}")


def synthetic_datamodule(num_classes: int, image_size: int, batch_size: int, images_per_class: int = 24,
                         data_dir: str | None = None) -> Any:
    """The synthetic dataset (generated once into the cache) at the given input size."""
    from wsol_lightning.data import SyntheticDataModule

    return SyntheticDataModule(data_dir=data_dir, num_classes=num_classes, images_per_class=images_per_class,
                               image_size=image_size, batch_size=batch_size, num_workers=0, val_per_class=2)


def synthetic_batch(num_classes: int, image_size: int, batch_size: int) -> dict[str, Any]:
    """One real training batch (every key the methods' training reads: image, label, index, ...; no boxes/masks)."""
    data = synthetic_datamodule(num_classes, image_size, batch_size, images_per_class=max(8, batch_size))
    data.prepare_data()
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def timed(fn: Callable[[], Any], steps: int, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` over ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def set_threads(threads: int) -> None:
    """Intra-op threads. Default 1 in every benchmark: on a shared, loaded 2-core machine OpenMP threads that
    spin-wait on each other made steps up to 10x slower than one thread."""
    torch.set_num_threads(threads)


def verdict(ratio: float, target: float, higher_is_worse: bool = True) -> str:
    ok = ratio <= target if higher_is_worse else ratio >= target
    return f"{'meets' if ok else 'MISSES'} target {'<=' if higher_is_worse else '>='} {target:g}"


def parse_options(text: str) -> dict[str, Any]:
    """``"a=true,b=3 c=x"`` -> ``{"a": True, "b": 3, "c": "x"}`` (a method's ``__init__`` options)."""
    options: dict[str, Any] = {}
    for item in text.replace(",", " ").split():
        key, _, raw = item.partition("=")
        value: Any = {"true": True, "false": False}.get(raw.lower(), raw)
        for cast in (int, float):
            if isinstance(value, str):
                try:
                    value = cast(raw)
                except ValueError:
                    pass
        options[key] = value
    return options
