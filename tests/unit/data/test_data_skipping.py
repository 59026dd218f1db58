"""Issue 14 case 6: ``skip_bad`` skips are counted across workers and processes and reported."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from wsol_lightning.data import CUBDataModule, DataError
from wsol_lightning.data.collate import is_empty_batch, merge_empty_batches, wsol_collate
from wsol_lightning.methods import CAM


def _sample(i):
    return {"image": torch.zeros(3, 4, 4), "label": torch.tensor(0), "boxes": torch.zeros(0, 4, dtype=torch.long),
            "index": torch.tensor(i), "image_id": str(i), "orig_size": torch.tensor([4, 4])}


def _corrupt(index, positions):
    for i in positions:
        path = index.root / index.image_ids[i]
        path.write_bytes(path.read_bytes()[:100])


def test_collate_counts_skipped_samples():
    batch = wsol_collate([_sample(0), None, _sample(2), None])
    assert batch["num_skipped"].item() == 2 and batch["index"].tolist() == [0, 2]
    empty = wsol_collate([None, None, None])
    assert is_empty_batch(empty) and empty["num_skipped"].item() == 3


def test_merge_empty_batches_keeps_every_count():
    full = [wsol_collate([_sample(0), None]), wsol_collate([_sample(1)])]
    empty = wsol_collate([None, None])
    # leading, middle and trailing all-skipped batches: counts move to a neighbour, nothing is lost
    out = list(merge_empty_batches([empty, full[0], empty, empty, full[1], empty]))
    assert [b["index"].tolist() for b in out] == [[0], [1]]
    assert [int(b["num_skipped"]) for b in out] == [2 + 1 + 2 + 2, 0 + 2]
    with pytest.raises(DataError, match=r"every sample was skipped as unreadable \(4 of them, skip_bad=True\): x.txt"):
        list(merge_empty_batches([empty, empty], "x.txt"))


def test_eval_loader_counts_skips_made_in_worker_processes(cub_copy):
    """4 of 12 test images unreadable, the first batch wholly: no empty batch, the count reaches the main process."""
    dm = CUBDataModule(cub_copy, image_size=32, batch_size=4, num_workers=2, skip_bad=True)
    dm.setup("test")
    _corrupt(dm.index("test"), [0, 1, 2, 3])
    batches = list(dm.test_dataloader())
    assert all(not is_empty_batch(b) for b in batches)
    assert sum(int(b["num_skipped"]) for b in batches) == 4
    assert sum(len(b["index"]) for b in batches) == 8
    assert dm.datasets["test"].num_skipped == 0  # each worker counted its own copy: why the batch carries it


def test_skipped_samples_reported_in_metrics_table(cub_copy, capsys):
    """fit + test with skip_bad: a wholly bad train batch is stepped over, train/test report their skips."""
    dm = CUBDataModule(cub_copy, image_size=32, batch_size=4, num_workers=0, skip_bad=True, val_per_class=2)
    dm.setup("fit")
    order = [i for i, _ in dm.train_dataloader().sampler]  # epoch 0's seeded order: batches of 4 and 2
    assert len(order) == 6
    _corrupt(dm.index("train"), order[:4])  # the first train batch is wholly bad
    _corrupt(dm.index("test"), [0, 1, 2, 3])
    model = CAM(backbone="test_resnet", num_classes=3, cam_curve_interval=0.05, operating_threshold=0.5)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, num_sanity_val_steps=0, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert trainer.callback_metrics["train/num_skipped"].item() == 4
    assert trainer.fit_loop.epoch_loop.batch_progress.total.completed == 2
    assert trainer.callback_metrics["val/num_skipped"].item() == 0
    capsys.readouterr()
    results = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert results["test/num_skipped"] == 4
    assert "! 4 test sample(s) were skipped as unreadable (skip_bad=True)" in capsys.readouterr().out
    assert "test/maxboxacc_v2" in results
