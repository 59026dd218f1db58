"""Metric updates on background lanes (issue 16, item 2): bit-identical to the synchronous path, errors
re-raised on the loop's thread with the batch named, a flush before every compute, bounded queues."""

from __future__ import annotations

import copy
import pickle
import threading

import lightning as L
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from wsol_lightning.methods.background import BackgroundUpdates, MetricUpdateError, with_context
from wsol_lightning.methods.base import WSOLModule
from wsol_lightning.methods.evaluation import LocalizationEvaluator
from wsol_lightning.metrics.functional import upsample_and_normalize

SIZE = 24


def _batch(seed: int, batch: int = 3) -> dict:
    """Smooth random maps' source, boxes and masks (with ignored pixels) of ``batch`` images."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(batch, 5, 5, generator=g)
    xy = torch.randint(0, SIZE // 2, (batch, 2), generator=g)
    boxes = [torch.cat([p, p + SIZE // 3]).view(1, 4) for p in xy]
    mask = (torch.rand(batch, SIZE, SIZE, generator=g) > 0.6).to(torch.uint8)
    mask[:, 0] = 255
    return {"raw": raw, "label": torch.randint(0, 4, (batch,), generator=g), "boxes": boxes, "mask": mask,
            "logits": torch.randn(batch, 4, generator=g)}


def _run(asynchronous: bool, batches: list[dict]) -> dict:
    evaluator = LocalizationEvaluator(cam_curve_interval=0.001, asynchronous=asynchronous, max_pending=1)
    for i, b in enumerate(batches):
        maps = upsample_and_normalize(b["raw"], (SIZE, SIZE))
        evaluator.update(maps, b, b["logits"], context=f"val batch {i}")
    results = evaluator.compute()
    results.update(evaluator.accuracy_at(0.3))
    flags, messages = evaluator.warnings(results, 0.3)
    return {**results, **{k: torch.tensor(v) for k, v in flags.items()}, "messages": messages,
            "border_mass": evaluator.sanity.stats.border_mass.clone()}


def test_async_updates_equal_the_synchronous_ones_bit_for_bit():
    batches = [_batch(seed) for seed in range(6)]
    sync, asyn = _run(False, batches), _run(True, batches)
    assert sync.keys() == asyn.keys() and len(sync) > 20
    for key, value in sync.items():
        if isinstance(value, Tensor):
            assert torch.equal(value, asyn[key]) or (value.isnan().all() and asyn[key].isnan().all()), key
        else:
            assert value == asyn[key], key
    assert 0 < float(sync["maxboxacc_v2"]) < 100 and 0 < float(sync["pxap"]) < 100  # a real, non-trivial table


class _Tiny(WSOLModule):
    """Maps are the images' first channel (no network): evaluation only."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(backbone="none", num_classes=4, cam_curve_interval=0.01, **kwargs)
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.at_epoch_end: dict[str, int] = {}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return {"logits": images[:, 1, 0, :4] + self.weight, "maps": images[:, 0, ::4, ::4]}

    def localization_maps(self, outputs: dict[str, Tensor], classes: Tensor) -> Tensor:
        return outputs["maps"]


def _loader(bad_batch: int | None = None) -> DataLoader:
    items = []
    for i in range(4):
        b = _batch(10 + i)
        image = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(i))
        if i == bad_batch:
            b["boxes"][1] = torch.tensor([[-1, 2, 5, 5]])  # the box metric refuses it
        items.append({"image": image, "label": b["label"], "boxes": b["boxes"], "mask": b["mask"]})
    return DataLoader(items, batch_size=None)


def _validate(model: WSOLModule, loader: DataLoader) -> dict[str, float]:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    return trainer.validate(model, dataloaders=loader, verbose=False)[0]


def _hold_box_updates(model: WSOLModule, release: threading.Event) -> None:
    """Make every box update of ``model`` wait for ``release`` before it runs (on its lane)."""
    update = model.evaluator.box.update

    def late_update(*args: object, **kwargs: object) -> None:
        release.wait()
        update(*args, **kwargs)

    model.evaluator.box.update = late_update


def test_epoch_end_flushes_before_compute_so_every_batch_counts():
    """Every box update is held until the epoch end hook runs: the table must still count all 12 images."""
    release = threading.Event()

    class Held(_Tiny):
        def on_validation_epoch_end(self) -> None:
            self.at_epoch_end["done"] = int(self.evaluator.box.num_images)  # nothing landed yet
            release.set()
            super().on_validation_epoch_end()

    held = Held(async_metrics=True, async_max_pending=8)
    _hold_box_updates(held, release)
    counted: dict[str, int] = {}
    compute = held.evaluator.box.compute

    def counting_compute() -> dict[str, Tensor]:
        counted["n"] = int(held.evaluator.box.num_images)
        return compute()

    held.evaluator.box.compute = counting_compute
    asyn = _validate(held, _loader())
    sync = _validate(_Tiny(async_metrics=False), _loader())
    assert held.at_epoch_end["done"] == 0 and counted["n"] == 12
    assert asyn == sync


@pytest.mark.parametrize("asynchronous", [True, False])
def test_an_update_error_reaches_the_loop_naming_the_batch_and_metric(asynchronous: bool):
    with pytest.raises(ValueError, match=r"val batch 2, metric 'box': boxes\[1\] has negative coordinates") as info:
        _validate(_Tiny(async_metrics=asynchronous), _loader(bad_batch=2))
    assert isinstance(info.value.__cause__, ValueError)  # the worker's own exception and traceback


def test_back_pressure_bounds_the_pending_updates():
    """With max_pending=2 the third submit cannot return while the first update still runs."""
    updates = BackgroundUpdates(enabled=True, max_pending=2)
    go, two_returned = threading.Event(), threading.Event()
    returned: list[int] = []
    seen_by_first: list[int] = []

    def first() -> None:
        go.wait()
        seen_by_first.append(len(returned))

    def submitter() -> None:
        for k in range(5):
            updates.submit("lane", first if k == 0 else (lambda: None), f"item {k}")
            returned.append(k)
            if len(returned) == 2:
                two_returned.set()

    thread = threading.Thread(target=submitter)
    thread.start()
    two_returned.wait()
    go.set()
    thread.join()
    updates.flush()
    assert seen_by_first == [2] and returned == [0, 1, 2, 3, 4]


def test_lanes_keep_submission_order_and_stop_at_flush():
    updates = BackgroundUpdates(enabled=True, max_pending=3)
    order: dict[str, list[int]] = {"a": [], "b": []}
    for k in range(20):
        for lane in order:
            updates.submit(lane, lambda lane=lane, k=k: order[lane].append(k), f"item {k}")
    updates.flush()
    assert order == {"a": list(range(20)), "b": list(range(20))}
    assert not [t for t in threading.enumerate() if t.name.startswith("wsol-metric")]  # none left to fork with
    assert updates.num_pending == 0


def test_errors_keep_their_type_or_become_metric_update_errors():
    updates = BackgroundUpdates(enabled=True)
    updates.submit("lane", lambda: {}["missing"], "test batch 7, metric 'pixel'")
    with pytest.raises(MetricUpdateError, match=r"test batch 7, metric 'pixel': 'missing' \(KeyError\)"):
        updates.flush()
    updates.flush()  # the error was reported once; the lanes are usable again
    assert isinstance(with_context(ValueError("bad"), "ctx"), ValueError)


def test_an_evaluator_copies_and_pickles_with_idle_lanes():
    evaluator = LocalizationEvaluator(cam_curve_interval=0.01, asynchronous=True, max_pending=3)
    b = _batch(0)
    evaluator.update(upsample_and_normalize(b["raw"], (SIZE, SIZE)), b, b["logits"])
    for clone in (copy.deepcopy(evaluator), pickle.loads(pickle.dumps(evaluator))):
        assert clone.updates.enabled and clone.updates.max_pending == 3 and clone.updates.num_pending == 0
    evaluator.flush()
    assert int(evaluator.box.num_images) == 3


def test_updates_run_under_the_callers_inference_mode():
    """States created under inference_mode (Lightning's eval loops) can only be updated under it."""
    with torch.inference_mode():
        evaluator = LocalizationEvaluator(cam_curve_interval=0.01, asynchronous=True)
        b = _batch(1)
        evaluator.update(upsample_and_normalize(b["raw"], (SIZE, SIZE)), b, b["logits"])
        evaluator.flush()
    modes: list[tuple[bool, bool]] = []
    updates = BackgroundUpdates(enabled=True)
    with torch.no_grad():
        updates.submit("lane", lambda: modes.append((torch.is_inference_mode_enabled(), torch.is_grad_enabled())),
                       "x")
    updates.flush()
    assert int(evaluator.box.num_images) == 3 and modes == [(False, False)]


def test_map_visualizer_reads_the_curves_after_the_pending_updates():
    """Callbacks' epoch-end hooks run before the module's: the visualizer's snapshot must flush too."""
    from wsol_lightning.callbacks import MapVisualizer

    release = threading.Event()
    model = _Tiny(async_metrics=True, async_max_pending=8)
    _hold_box_updates(model, release)
    flush = model.evaluator.updates.flush

    def releasing_flush() -> None:  # the held updates can finish only once someone flushes
        release.set()
        flush()

    model.evaluator.updates.flush = releasing_flush
    try:
        for i, batch in enumerate(_loader()):
            logits, maps = model.evaluation_maps(batch)
            model.evaluator.update(maps, batch, logits, context=f"val batch {i}")
        assert int(model.evaluator.box.num_images) == 0  # all still held
        visualizer = MapVisualizer(save_dir="")
        visualizer._snapshot(model, due=True)
        assert int(model.evaluator.box.num_images) == 12 and model.evaluator.updates.num_pending == 0
        assert "box" in visualizer._curves
    finally:
        release.set()
        flush()
