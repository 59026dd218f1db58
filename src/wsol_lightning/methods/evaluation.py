"""The localisation metrics a WSOL module accumulates during val and test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from wsol_lightning.methods.background import BackgroundUpdates
from wsol_lightning.methods.sanity import SanityEvaluator
from wsol_lightning.metrics import MaxBoxAcc, PxAP
from wsol_lightning.metrics import functional as F
from wsol_lightning.metrics._checks import check_flags, check_maps, check_masks  # the metrics' own input checks
from wsol_lightning.types import WSOLBatch


def sum_over_processes(value: float) -> float:
    """``value`` summed over every process (itself when not distributed); all processes must call it."""
    total = torch.tensor(float(value), dtype=torch.float64)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        total = total.to(device)
        dist.all_reduce(total)
    return float(total.item())


def any_process_updated(metric: nn.Module) -> bool:
    """Whether any process updated ``metric`` (every process must agree before a synced compute)."""
    return sum_over_processes(float(getattr(metric, "_update_count", 0))) > 0


def skipped_report(stage: str, local_skipped: int) -> tuple[float, str]:
    """Samples skipped as unreadable (``skip_bad``) over every process, and the message to print ("" if none).

    Returns:
        ``(total, message)``: the total is logged as ``{stage}/num_skipped`` beside the metrics it
        qualifies; the message joins the warnings printed after the metrics table.

    """
    total = sum_over_processes(local_skipped)
    if total <= 0:
        return total, ""
    return total, (
        f"{int(total)} {stage} sample(s) were skipped as unreadable (skip_bad=True): the {stage} metrics "
        f"exclude them ({stage}/num_skipped)"
    )


@contextmanager
def forward_once(module: nn.Module, images: Tensor) -> Iterator[None]:
    """Within the block, ``module(images)`` on this very ``images`` tensor runs the forward pass only once.

    An evaluation step reads the GT-class maps and, on multi-label data, every positive class's seed map
    from the same images: the second ``module(images)`` returns the first one's outputs (they are only read;
    evaluation forwards are deterministic) instead of a second forward pass. Other inputs run as usual.
    """
    own = module.__dict__.get("forward")  # an instance-level forward already there is put back afterwards
    forward = module.forward
    outputs: list[Any] = []

    def once(x: Tensor, *args: Any, **kwargs: Any) -> Any:
        if x is not images or args or kwargs:
            return forward(x, *args, **kwargs)
        if not outputs:
            outputs.append(forward(x))
        return outputs[0]

    module.forward = once  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own  # type: ignore[method-assign]


def collect(futures: list[Future[Any]], check: Callable[[], None]) -> list[Any]:
    """The futures' results in order; if one failed, ``check()`` may raise a clearer error first."""
    try:
        return [future.result() for future in futures]
    except Exception:
        check()
        raise


class LocalizationEvaluator(nn.Module):
    """MaxBoxAcc (with top-1/top-5 hit counters) on images with boxes, PxAP/PIoU on images with masks.

    Beside them, on the same images in the same update (:class:`~wsol_lightning.methods.sanity.SanityEvaluator`):
    ``maxboxacc_v2_outer`` (V2 over object contours only, no hole boxes; V2 runs only), the centre-Gaussian
    and whole-image baselines, the positive-pixel rate and the statistics behind the sanity warnings.

    Args:
        iou_thresholds: IoU thresholds (percent) of MaxBoxAcc.
        cam_curve_interval: spacing of the CAM threshold grid.
        multi_contour: all contours (MaxBoxAccV2 protocol) or the largest one (V1).
        default_threshold: operating threshold used only where none was chosen on val nor given
            (prediction on a never-validated model); a warning says so.
        asynchronous: run the metric updates on background threads, one per metric, while the caller goes
            on (:mod:`~wsol_lightning.methods.background`: same results, bit for bit), with the per-image
            work of PxAP and the sanity counters split over ``split_threads`` threads; ``compute``,
            ``accuracy_at``, ``warnings`` and ``reset`` wait for them first (:meth:`flush`).
        max_pending: updates a metric may hold queued or running before ``update`` waits.
        split_threads: with ``asynchronous``, threads over which a batch's per-image PxAP and sanity work is
            split (``None``: ``torch.get_num_threads()``, as the box sweeps split their images).

    """

    def __init__(self, iou_thresholds: tuple[int, ...] = (30, 50, 70), cam_curve_interval: float = 0.001,
                 multi_contour: bool = True, default_threshold: float = 0.2, asynchronous: bool = False,
                 max_pending: int = 2, split_threads: int | None = None) -> None:
        super().__init__()
        if split_threads is not None and split_threads < 1:
            raise ValueError(f"split_threads must be >= 1 or None, got {split_threads}")
        self.split_threads = split_threads
        self.updates = BackgroundUpdates(enabled=asynchronous, max_pending=max_pending)
        self.box = MaxBoxAcc(iou_thresholds=iou_thresholds, cam_curve_interval=cam_curve_interval,
                             multi_contour=multi_contour)
        self.pixel = PxAP(cam_curve_interval=cam_curve_interval)
        self.box_outer = (MaxBoxAcc(iou_thresholds=iou_thresholds, cam_curve_interval=cam_curve_interval,
                                    outer_contours_only=True) if multi_contour else None)
        self.sanity = SanityEvaluator(iou_thresholds, cam_curve_interval, multi_contour)
        self.default_threshold = default_threshold
        self.loc_iou = 50 if 50 in iou_thresholds else iou_thresholds[len(iou_thresholds) // 2]

    def update(self, maps: Tensor, batch: WSOLBatch, logits: Tensor, context: str = "batch") -> None:
        """Add a batch: ``maps`` ``(B, H, W)`` in [0, 1] for the GT classes, ``logits`` ``(B, C)``.

        ``context`` (e.g. ``"val batch 3"``) names the batch in the message of an error an update raises.
        The tensors must not be modified in place afterwards (asynchronous updates read them later).
        """
        labels = batch["label"]
        top5 = logits.detach().topk(min(5, logits.shape[1]), dim=1).indices
        top1_correct = top5[:, 0] == labels
        top5_correct = (top5 == labels[:, None]).any(dim=1)
        boxes, masks = batch.get("boxes"), batch.get("mask")
        kept: list[Tensor] = []
        keep = [i for i, b in enumerate(boxes) if len(b) > 0] if boxes is not None else []
        if keep:
            index = torch.tensor(keep, device=maps.device)
            kept = [boxes[i] for i in keep]  # type: ignore[index]
            self._submit("box", context, lambda: self.box.update(
                maps[index], kept, top1_correct=top1_correct[index], top5_correct=top5_correct[index]))
            if self.box_outer is not None:
                outer = self.box_outer
                self._submit("box_outer", context, lambda: outer.update(maps[index], kept))
        if self.updates.enabled:
            self._split_update(maps, masks, top1_correct, logits.detach(), kept, context)
            return
        if masks is not None:
            self._submit("pixel", context, lambda: self.pixel.update(maps, masks))
        self._submit("sanity", context, lambda: self.sanity.update(maps, logits.detach(), top1_correct, kept, masks))

    def _split_update(self, maps: Tensor, masks: Tensor | None, top1_correct: Tensor, logits: Tensor,
                      kept: list[Tensor], context: str) -> None:
        """PxAP and the sanity counters with their per-image work spread over threads, then added in order.

        The parts (:meth:`_image_part`, consecutive image ranges) check the maps and masks once for both
        metrics and touch no state; the ``pixel`` and ``sanity`` lanes add them in image order, which
        equals one synchronous update bit for bit (integer counts; per-image float masses summed in order).
        """
        batch = maps.shape[0]
        threads = int(self.split_threads or torch.get_num_threads())
        count = max(1, min(threads, batch))
        bounds = [batch * j // count for j in range(count + 1)]
        futures = self.updates.spread([partial(self._image_part, maps, masks, top1_correct, lo, hi)
                                       for lo, hi in zip(bounds[:-1], bounds[1:])], threads)

        def check() -> None:  # after a failed part: the synchronous update's message and image index
            arr = check_maps(maps)
            if masks is not None:
                check_masks(masks, arr)

        if masks is not None:
            self._submit("pixel", context, lambda: self.pixel.add_histograms(
                *(np.sum(hists, axis=0) for hists in zip(*(part[0] for part in collect(futures, check))))))
        size = (int(maps.shape[-2]), int(maps.shape[-1]))
        self._submit("sanity", context, lambda: self.sanity.add_parts(
            [part[1] for part in collect(futures, check)], logits, kept, size))

    def _image_part(self, maps: Tensor, masks: Tensor | None, top1_correct: Tensor, start: int,
                    stop: int) -> tuple[tuple[np.ndarray, np.ndarray] | None, dict[str, Any]]:
        """PxAP histograms (``None`` without masks) and sanity part of images ``start:stop``; no state change."""
        arr = check_maps(maps[start:stop])
        flags = check_flags(top1_correct[start:stop], stop - start, "top1_correct")
        gt = None if masks is None else check_masks(masks[start:stop], arr)
        hist = None if gt is None else F.pixel_histograms(arr, gt, self.pixel.thresholds)
        return hist, self.sanity.image_part(arr, flags, gt)

    def _submit(self, lane: str, context: str, fn: Callable[[], None]) -> None:
        self.updates.submit(lane, fn, f"{context}, metric '{lane}'")

    def flush(self) -> None:
        """Wait for the pending updates (re-raising the first error); a no-op when updates are synchronous."""
        self.updates.flush()

    def compute(self) -> dict[str, Tensor]:
        """Return every metric that has data, in percent, plus ``best_threshold`` when boxes were seen."""
        self.flush()
        results: dict[str, Tensor] = {}
        boxes_seen, masks_seen = any_process_updated(self.box), any_process_updated(self.pixel)
        if boxes_seen:
            box = self.box.compute()
            results.update(box)
            results["maxboxacc"] = box[f"maxboxacc@{self.loc_iou}"]
            if self.box_outer is not None:
                results["maxboxacc_v2_outer"] = self.box_outer.compute()["maxboxacc_v2"]
        if masks_seen:
            results.update(self.pixel.compute())
        if any_process_updated(self.sanity.stats):
            results.update(self.sanity.compute(boxes_seen, masks_seen))
        return results

    def warnings(self, results: dict[str, Tensor], threshold: float) -> tuple[dict[str, float], list[str]]:
        """Sanity flags and messages for a computed table (see ``SanityEvaluator.warnings``); none without data."""
        self.flush()
        if "border_mass_ratio" not in results:
            return {}, []
        return self.sanity.warnings(results, threshold)

    def accuracy_at(self, threshold: float) -> dict[str, Tensor]:
        """GT-known, Top-1 and Top-5 Loc (IoU >= 50) at ``threshold``; empty when no box was seen."""
        self.flush()
        if not any_process_updated(self.box):
            return {}
        return self.box.accuracy_at(threshold, iou_threshold=self.loc_iou)

    def fallback_threshold(self, stage: str) -> float:
        """The operating threshold to use when none was chosen on val (warns)."""
        from lightning.pytorch.utilities import rank_zero_warn

        rank_zero_warn(
            f"{stage}: no operating threshold was chosen on the val split and none was given "
            f"(model.operating_threshold); using the default {self.default_threshold} for GT-known/Top-1/"
            "Top-5 Loc. Validate first (wsol validate ... --ckpt_path ...) or set it explicitly."
        )
        return self.default_threshold

    def reset(self) -> None:
        """Wait for the pending updates (their errors propagate), then reset every metric."""
        self.flush()
        self.box.reset()
        self.pixel.reset()
        if self.box_outer is not None:
            self.box_outer.reset()
        self.sanity.reset()
