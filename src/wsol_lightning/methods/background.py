"""Metric updates off the evaluation loop's critical path: ordered background lanes with back-pressure.

The localisation metrics (MaxBoxAcc's contour sweep, PxAP's histograms, the sanity counters) cost a few
ms per image on the CPU, which on a GPU is most of an evaluation pass. :class:`BackgroundUpdates` runs
them on background threads while the loop computes the next batch's forward pass.

Exactness and determinism. Each *lane* (one metric object) has exactly one worker thread and runs its
updates in submission order, on the very tensors the synchronous path would get (handed over by
reference, nothing re-encoded). A metric's state therefore goes through the same operations in the same
order as without the lanes: the results are bit-identical, float sums included, and deterministic.
Different lanes touch different metric objects, so they may run at the same time.

Splitting a batch over threads (:meth:`BackgroundUpdates.spread`). So that no single metric bounds the
throughput, a lane's per-image work can be cut into parts over consecutive image ranges, computed on a
pool of threads without touching any state; the lane's update then adds the parts in image order. Integer
counts add up exactly, and float sums are formed from per-image values concatenated in image order, so
the state still changes exactly as in one synchronous update (``methods/evaluation.py`` does this for PxAP
and the sanity counters; the box sweeps split their images inside ``MaxBoxAcc.update``).

Why threads and the float maps, not processes fed with uint8 maps: only the box metrics reduce a map
to ``uint8(map * 255)``; PxAP histograms the float64 values over the ``cam_curve_interval`` grid (1000
bins at 0.001, finer than 256 levels) and the border-mass statistic sums float values, so a uint8 copy
would change them. Threads share memory (no copy, no pickling), and the expensive parts release the
GIL (the numba sweep is ``nogil``, numpy's histogram search, OpenCV and torch do), which
``benchmarks/eval_throughput.py`` measures.

Each call runs under the caller's grad and inference modes and CUDA device (thread-local in torch), as it
would inline.

Back-pressure: a lane holds at most ``max_pending`` queued or running updates; a further ``submit``
waits, so memory stays bounded (about ``max_pending + 1`` batches of maps) and a slow metric slows the
loop instead of piling up. Errors: an update's exception is re-raised on the calling thread at the next
``submit`` or at ``flush``, with the lane and the batch named. Lifetime: threads start at the first
``submit`` and are joined by ``flush`` (which ``compute`` and ``reset`` call), so no thread outlives an
evaluation epoch and none is alive when data loaders fork their workers.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch


def lower_thread_priority(increment: int) -> None:
    """Raise the calling thread's nice value by ``increment`` (Linux: per thread; elsewhere nothing)."""
    if increment <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except OSError:  # not permitted or not per-thread here: keep the priority
        pass


def in_callers_modes(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` to run on another thread under the calling thread's grad/inference modes and CUDA device.

    They are thread-local in torch; a synchronous call would run under them (Lightning evaluates under
    ``inference_mode``, and metric states created there are inference tensors).
    """
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()
    cuda = torch.cuda.current_device() if torch.cuda.is_initialized() else None

    def call() -> Any:
        if cuda is not None:
            torch.cuda.set_device(cuda)
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn()

    return call


class MetricUpdateError(RuntimeError):
    """A background metric update failed (raised when the original exception type cannot carry context)."""


def with_context(err: BaseException, context: str) -> BaseException:
    """``err`` re-created with ``context`` in front of its message, same type where possible.

    Keeping the type lets callers catch a background ``ValueError`` (e.g. a NaN map) as they would the
    synchronous one; types whose constructor takes other arguments become :class:`MetricUpdateError`.
    """
    message = f"{context}: {err}"
    try:
        new = type(err)(message)
    except Exception:  # noqa: BLE001 - any constructor signature
        return MetricUpdateError(f"{message} ({type(err).__name__})")
    return new if str(new) == message else MetricUpdateError(f"{message} ({type(err).__name__})")


class BackgroundUpdates:
    """Run callables on one background thread per lane, in submission order within a lane.

    Args:
        enabled: ``False`` runs every call at once on the caller's thread (the synchronous path).
        max_pending: updates a lane may hold queued or running before ``submit`` waits (>= 1).
        lane_nice: how much lower than the loop's the lanes' scheduling priority is (Linux thread nice
            increment; 0 keeps it): where no core is free, the forward pass goes first and the metrics take
            the leftover cycles, instead of both slowing down.

    """

    def __init__(self, enabled: bool = True, max_pending: int = 2, lane_nice: int = 5) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.enabled = bool(enabled)
        self.max_pending = int(max_pending)
        self.lane_nice = int(lane_nice)
        self._lanes: dict[str, ThreadPoolExecutor] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._pending: deque[tuple[Future[Any], str]] = deque()
        self._pool: ThreadPoolExecutor | None = None  # the image parts of split updates (:meth:`spread`)

    # Threads and locks are neither picklable nor copyable: a copy starts idle with the same settings.
    def __getstate__(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "max_pending": self.max_pending, "lane_nice": self.lane_nice}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @property
    def num_pending(self) -> int:
        """Submitted updates not yet collected (by ``flush``, or by a later ``submit`` once done)."""
        return len(self._pending)

    def submit(self, lane: str, fn: Callable[[], Any], context: str) -> None:
        """Run ``fn()`` on ``lane``'s thread after the lane's earlier calls (at once when disabled).

        Args:
            lane: name of the lane (one per metric object: calls on one lane never overlap).
            fn: the update, a callable without arguments.
            context: what the call works on (e.g. ``"val batch 3, metric 'box'"``), put in front of the
                message of any exception it raises.

        Raises:
            Exception: an earlier call's exception, with its context (raised here or at ``flush``).

        """
        if not self.enabled:
            try:
                fn()
            except Exception as err:
                raise with_context(err, context) from err
            return
        self._raise_finished_errors()
        if lane not in self._lanes:
            self._lanes[lane] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"wsol-metric-{lane}",
                                                   initializer=lower_thread_priority, initargs=(self.lane_nice,))
            self._slots[lane] = threading.BoundedSemaphore(self.max_pending)
        slot = self._slots[lane]
        slot.acquire()  # back-pressure: wait while the lane holds max_pending updates
        call = in_callers_modes(fn)

        def run() -> Any:
            try:
                return call()
            finally:
                slot.release()

        self._pending.append((self._lanes[lane].submit(run), context))

    def spread(self, parts: Sequence[Callable[[], Any]], threads: int) -> list[Future[Any]]:
        """Start ``parts`` (independent, touching no shared state) on a pool of ``threads`` worker threads.

        The way a lane splits one batch's per-image work: a later :meth:`submit` passes the futures' results,
        in order, to the lane's update (which alone changes the metric state). Only when enabled. The lanes'
        back-pressure bounds the parts too: the caller spreads a batch, then waits in ``submit`` while the
        lane is full, so at most ``max_pending + 1`` batches' parts exist. Errors surface through the lane's
        update (``Future.result``); :meth:`flush` stops the pool.
        """
        if not self.enabled:
            raise RuntimeError("spread needs enabled background updates")
        if self._pool is None:  # its size is fixed until the next flush
            self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="wsol-metric-parts",
                                            initializer=lower_thread_priority, initargs=(self.lane_nice,))
        return [self._pool.submit(in_callers_modes(part)) for part in parts]

    def _raise_finished_errors(self) -> None:
        """Drop the finished calls at the head of the queue; on an error among them, ``flush`` (which raises)."""
        while self._pending and self._pending[0][0].done():
            if self._pending[0][0].exception() is not None:
                self.flush()
            self._pending.popleft()

    def flush(self) -> None:
        """Wait for every submitted call, stop the threads, and raise the first error in submission order."""
        pending, self._pending = self._pending, deque()
        first: tuple[BaseException, str] | None = None
        for future, context in pending:
            err = future.exception()  # waits
            if err is not None and first is None:
                first = (err, context)
        for executor in self._lanes.values():
            executor.shutdown(wait=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._lanes.clear()
        self._slots.clear()
        if first is not None:
            err, context = first
            raise with_context(err, context) from err


__all__ = ["BackgroundUpdates", "MetricUpdateError", "with_context"]
