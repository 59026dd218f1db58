"""Issue 14 case 6: the ``{stage}/num_skipped`` count is summed over DDP processes (2-process gloo group)."""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

from wsol_lightning.methods.evaluation import skipped_report, sum_over_processes


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        total, message = skipped_report("test", local_skipped=[3, 1][rank])  # each rank skipped a different number
        Path(out_dir, f"{rank}.txt").write_text(f"{total}|{message}")
    finally:
        dist.destroy_process_group()


def test_skipped_count_is_summed_over_processes(tmp_path):
    # fork: the children inherit the imports (spawn would re-import torch and Lightning for tens of seconds)
    mp.start_processes(_worker, args=(str(tmp_path / "pg"), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    for rank in (0, 1):
        total, message = (tmp_path / f"{rank}.txt").read_text().split("|")
        assert float(total) == 4.0 and message.startswith("4 test sample(s) were skipped as unreadable")


def test_single_process_sum_is_the_value():
    assert sum_over_processes(5) == 5.0
    assert skipped_report("val", 0) == (0.0, "")
