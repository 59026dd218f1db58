"""PxAP and the sanity counters split over threads (issue 16, item 2): the per-image parts, added in image
order, equal the synchronous whole-batch update bit for bit, on maps where the order of a float sum matters."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import Tensor

from wsol_lightning.methods.evaluation import LocalizationEvaluator
from wsol_lightning.metrics.functional import upsample_and_normalize
from wsol_lightning.metrics.sanity import border_mass

SIZE = 24
TINY = 2.0**-53  # half an ulp of 1.0: 1 + TINY rounds back to 1, TINY + TINY does not vanish


def _order_batch() -> dict:
    """Three maps whose border masses are 1, 2**-53 and 2**-53 (one border pixel each, zeros elsewhere).

    Summed in image order the masses give 1.0 (each tiny one is rounded away); summed per part
    ``[1] + [TINY + TINY]`` they give ``1 + 2**-52``: any other order changes the result.
    """
    maps = torch.zeros(3, SIZE, SIZE, dtype=torch.float64)
    maps[0, 0, 0], maps[1, 0, 5], maps[2, SIZE - 1, 3] = 1.0, TINY, TINY
    mask = torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)
    mask[:, 8:16, 8:16] = 1
    mask[:, :, -1] = 255
    return {"maps": maps, "label": torch.tensor([0, 1, 2]), "boxes": [torch.tensor([[8, 8, 15, 15]])] * 3,
            "mask": mask, "logits": torch.eye(4)[:3]}


def _random_batch(seed: int, batch: int = 7) -> dict:
    g = torch.Generator().manual_seed(seed)
    maps = upsample_and_normalize(torch.rand(batch, 5, 5, generator=g), (SIZE, SIZE))
    xy = torch.randint(0, SIZE // 2, (batch, 2), generator=g)
    mask = (torch.rand(batch, SIZE, SIZE, generator=g) > 0.6).to(torch.uint8)
    mask[:, 0] = 255
    return {"maps": maps, "label": torch.randint(0, 4, (batch,), generator=g), "mask": mask,
            "boxes": [torch.cat([p, p + SIZE // 3]).view(1, 4) for p in xy],
            "logits": torch.randn(batch, 4, generator=g)}


def _evaluate(evaluator: LocalizationEvaluator, batches: list[dict]) -> dict[str, Tensor]:
    for i, b in enumerate(batches):
        evaluator.update(b["maps"], b, b["logits"], context=f"val batch {i}")
    results = evaluator.compute()
    results.update(evaluator.accuracy_at(0.3))
    flags, _ = evaluator.warnings(results, 0.3)
    results.update({k: torch.tensor(v) for k, v in flags.items()})
    stats = evaluator.sanity.stats
    states = {"pixel": evaluator.pixel, "centre_pixel": evaluator.sanity.centre_pixel, "stats": stats}
    for name, metric in states.items():
        results.update({f"{name}.{k}": getattr(metric, k).clone() for k in metric._defaults})
    return results


def _assert_bit_identical(sync: dict[str, Tensor], split: dict[str, Tensor]) -> None:
    assert sync.keys() == split.keys()
    for key, value in sync.items():
        same = torch.equal(value, split[key]) or (value.isnan().all() and split[key].isnan().all())
        assert same, (key, value, split[key])


def test_naive_part_sums_would_differ_on_these_maps():
    """The maps of the next test make the float order matter (else it could not catch a reordered sum)."""
    masses = border_mass(_order_batch()["maps"])[0]
    assert masses.tolist() == [1.0, TINY, TINY] and masses.sum() == 1.0
    assert masses[:1].sum() + masses[1:].sum() != masses.sum()


@pytest.mark.parametrize("threads", [2, 3, 5])
@pytest.mark.parametrize("data", ["order", "random"])
def test_split_updates_equal_the_synchronous_ones_bit_for_bit(threads: int, data: str):
    """``order``: the masses of :func:`_order_batch` alone (a later large mass would round a difference away)."""
    batches = ([_order_batch(), _order_batch()] if data == "order" else
               [_random_batch(0), _random_batch(1, batch=2), _order_batch(), _random_batch(2)])
    sync = _evaluate(LocalizationEvaluator(cam_curve_interval=0.001), batches)
    split = _evaluate(LocalizationEvaluator(cam_curve_interval=0.001, asynchronous=True, max_pending=1,
                                            split_threads=threads), batches)
    _assert_bit_identical(sync, split)
    assert 0 < float(sync["pxap"]) < 100 and float(sync["stats.border_mass"]) > 0  # a real table


def test_split_parts_cover_consecutive_image_ranges_on_worker_threads():
    evaluator = LocalizationEvaluator(cam_curve_interval=0.01, asynchronous=True, split_threads=3)
    seen: list[tuple[int, int, str]] = []
    image_part = evaluator._image_part

    def recording(maps: Tensor, masks: Tensor | None, top1: Tensor, start: int, stop: int):  # noqa: ANN202
        seen.append((start, stop, threading.current_thread().name))
        return image_part(maps, masks, top1, start, stop)

    evaluator._image_part = recording
    b = _random_batch(3)
    evaluator.update(b["maps"], b, b["logits"])
    evaluator.flush()
    assert sorted(s[:2] for s in seen) == [(0, 2), (2, 4), (4, 7)]
    assert all(name.startswith("wsol-metric-parts") for *_, name in seen)
    assert int(evaluator.pixel._update_count) == 1 and int(evaluator.sanity.stats.num_images) == 7
    assert not [t for t in threading.enumerate() if t.name.startswith("wsol-metric")]  # the pool stopped too


@pytest.mark.parametrize("asynchronous", [True, False])
def test_a_bad_mask_is_named_by_its_index_in_the_batch_not_in_its_part(asynchronous: bool):
    b = _random_batch(4, batch=6)
    b["mask"][4, 3, 3] = 7
    evaluator = LocalizationEvaluator(cam_curve_interval=0.01, asynchronous=asynchronous, split_threads=3)
    with pytest.raises(ValueError, match=r"^val batch 5, metric 'pixel': masks\[4\] must hold 0"):
        evaluator.update(b["maps"], b, b["logits"], context="val batch 5")
        evaluator.flush()
