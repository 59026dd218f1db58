"""Two CPU processes (gloo) updating on halves of the data give the single-process numbers exactly."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from wsol_lightning.metrics import MaxBoxAcc, PxAP


def make_data() -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(11)
    small = torch.from_numpy(rng.random((10, 1, 6, 6)))
    maps = torch.nn.functional.interpolate(small, size=(32, 32), mode="bicubic", align_corners=False)[:, 0]
    maps = maps - maps.amin(dim=(1, 2), keepdim=True)
    maps = maps / maps.amax(dim=(1, 2), keepdim=True)
    boxes = []
    for _ in range(10):
        x0, x1 = np.sort(rng.integers(0, 32, 2))
        y0, y1 = np.sort(rng.integers(0, 32, 2))
        boxes.append(torch.tensor([[x0, y0, x1, y1]]))
    masks = torch.from_numpy(rng.choice(np.array([0, 1, 255], np.uint8), size=(10, 32, 32)))
    top1 = torch.from_numpy(rng.random(10) < 0.6)
    return maps, boxes, masks, top1


def run(maps: torch.Tensor, boxes: list[torch.Tensor], masks: torch.Tensor, top1: torch.Tensor) -> dict:
    box = MaxBoxAcc(cam_curve_interval=0.01)
    pixel = PxAP(cam_curve_interval=0.01)
    for start in range(0, len(maps), 2):
        sl = slice(start, start + 2)
        box.update(maps[sl], boxes[sl], top1_correct=top1[sl], top5_correct=torch.ones_like(top1[sl]))
        pixel.update(maps[sl], masks[sl])
    out = {k: float(v) for k, v in box.compute().items()}
    out.update({f"at_{k}": float(v) for k, v in box.accuracy_at(0.3).items()})
    out["curve_sum"] = float(box.curves()["top1_loc@50"].sum())
    out.update({k: float(v) for k, v in pixel.compute().items()})
    out["pr_sum"] = float(pixel.curve()["recall"].sum())
    return out


def worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        maps, boxes, masks, top1 = make_data()
        half = slice(0, 5) if rank == 0 else slice(5, 10)
        result = run(maps[half], boxes[half], masks[half], top1[half])
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_equals_single_process(tmp_path: Path) -> None:
    single = run(*make_data())
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        assert torch.load(tmp_path / f"rank{rank}.pt") == single
