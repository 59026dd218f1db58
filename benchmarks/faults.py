"""Fault injection: bad inputs through ``fit``, ``test``, ``predict``, export and download; a table of outcomes.

Usage: python benchmarks/faults.py [--only 7,9] [--list]

Every case of issue 14 (1-10) is a row ``case -> stage -> outcome``. A run happens in this process (the CLI is
``WSOLCLI(args=...)``, small synthetic / fake-CUB layouts at 32-64 px, one epoch, a few batches) and is
classified honestly, whatever the code currently does:

* ``clear error``: the run stops (exception / non-zero exit) and the message names the culprit (file, line,
  key or value the case expects);
* ``skipped+counted``: the run goes on without the bad input and says how many (and which) it skipped;
* ``ok``: the run does the right thing (the case's own check of the result);
* ``noisy``: right, but with spurious warnings (informational, not a failure);
* failure classes: ``crash`` (it stops without naming the culprit), ``silently wrong`` (it goes on with wrong
  data or settings, or executes a payload), ``lost`` (a failure or a kill loses output that was done).

The cases live in ``fault_cases.py``; the whole matrix takes a few minutes on 2 loaded cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

OUTCOMES = ("clear error", "skipped+counted", "ok", "noisy", "crash", "silently wrong", "lost")
FAILURES = ("crash", "silently wrong", "lost")


@dataclass
class Run:
    """What one run did: the error it stopped with (if any), what it printed/logged/warned, its return value."""

    work: Path
    error: BaseException | None = None
    message: str = ""
    logs: str = ""
    value: Any = None
    seconds: float = 0.0

    def said(self, pattern: str) -> bool:
        """Whether the logs, warnings or output match ``pattern`` (a regex)."""
        return re.search(pattern, self.logs) is not None


Verdict = tuple[str, str]


@dataclass
class Case:
    """One fault: how to provoke it and how to judge the run.

    Attributes:
        number: the issue-14 case (1-10).
        name: short description.
        stage: ``fit``, ``test``, ``predict``, ``export`` or ``download``.
        action: ``action(work_dir, context)``, may raise; its return value is ``Run.value``.
        culprit: regexes that must ALL match the error message for a ``clear error``.
        verify: judges a run that did not raise (default: ``ok``).
        after_error: judges a run that raised BEFORE the culprit check (e.g. output lost, payload executed);
            returns ``None`` to fall through to the culprit check.

    """

    number: int
    name: str
    stage: str
    action: Callable[[Path, Any], Any]
    culprit: Sequence[str] = ()
    verify: Callable[[Run], Verdict] | None = None
    after_error: Callable[[Run], Verdict | None] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


def warned_about(name: str, wrong: str) -> Callable[[Run], Verdict]:
    """A ``verify``: ``ok`` when a log, warning or output line names ``name`` (quoted), else ``silently wrong``."""

    def verify(run: Run) -> Verdict:
        said = [ln for ln in run.logs.splitlines() if name in ln]
        if said:
            return "ok", "warned: " + said[0]
        return "silently wrong", wrong

    return verify


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@contextlib.contextmanager
def captured() -> Iterator[tuple[io.StringIO, _Collector, list[warnings.WarningMessage]]]:
    """Capture stdout/stderr, every log record (root and Lightning's own loggers) and every warning.

    Lightning's loggers print through handlers bound to the real stderr at import: those are swapped for the
    collector for the duration, so nothing of a run reaches the table.
    """
    out, handler = io.StringIO(), _Collector()
    names = ("", "lightning.pytorch", "lightning.fabric", "lightning")
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.handlers[:], lg.level) for lg in loggers]
    for lg in loggers:
        lg.handlers = [handler] if lg is loggers[0] or not lg.propagate else []
        lg.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(out):
            warnings.simplefilter("always")
            yield out, handler, caught
    finally:
        for lg, (handlers, level) in zip(loggers, saved):
            lg.handlers = handlers
            lg.setLevel(level)


def execute(case: Case, work: Path, context: Any) -> Run:
    """Run ``case`` in ``work`` and record what happened."""
    run = Run(work=work)
    t0 = time.perf_counter()
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns (echoing every argument) when both are given
    with captured() as (out, handler, caught), contextlib.chdir(work):  # stray files (config.yaml) land in work
        try:
            run.value = case.action(work, context)
        except SystemExit as exit_:  # jsonargparse prints the error and exits
            if exit_.code not in (0, None):
                run.error = exit_
        except BaseException as err:  # noqa: BLE001 (every failure is classified, none escapes)
            if isinstance(err, KeyboardInterrupt):
                raise
            run.error = err
        finally:
            sys.argv = argv
    run.seconds = time.perf_counter() - t0
    printed = out.getvalue()
    run.logs = "\n".join([printed, *handler.lines, *(str(w.message) for w in caught)])
    if isinstance(run.error, SystemExit):
        run.message = printed.strip().splitlines()[-1] if printed.strip() else f"exit {run.error.code}"
    elif run.error is not None:
        run.message = f"{type(run.error).__name__}: {run.error}"
    # jsonargparse appends a dump of the whole config ("Given value: Namespace(...)"): a path that appears only
    # there is not the message naming the culprit
    run.message = re.sub(r"\nGiven value( type)?:.*", "", run.message, flags=re.S).strip()
    return run


def classify(case: Case, run: Run) -> Verdict:
    """The outcome of ``run`` (one of :data:`OUTCOMES`) and a one-line detail."""
    if run.error is None:
        return case.verify(run) if case.verify is not None else ("ok", "")
    if case.after_error is not None:
        verdict = case.after_error(run)
        if verdict is not None:
            return verdict
    missing = [p for p in case.culprit if re.search(p, run.message) is None]
    if not missing:
        if case.culprit:  # show the line that names the culprit (a wrapped error may start elsewhere)
            match = re.search(case.culprit[0], run.message)
            start = run.message.rfind("\n", 0, match.start()) + 1 if match else 0
            if start:
                return "clear error", f"{type(run.error).__name__}: ... {run.message[start:].strip()}"
        return "clear error", run.message
    return "crash", f"{run.message} (does not match {missing})"


def first_line(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def run_matrix(cases: Sequence[Case], context_factory: Callable[[Path], Any], root: Path | None = None,
               echo: bool = True, detail_width: int = 110) -> list[tuple[Case, str, str, float]]:
    """Run every case in its own folder; print (and return) ``(case, outcome, detail, seconds)`` rows."""
    owned = root is None
    root = Path(tempfile.mkdtemp(prefix="wsol_faults_")) if root is None else root
    rows = []
    try:
        context = context_factory(root)
        for k, case in enumerate(cases):
            work = root / f"case_{k:02d}"
            work.mkdir(parents=True, exist_ok=True)
            run = execute(case, work, context)
            try:
                outcome, detail = classify(case, run)
            except Exception:  # noqa: BLE001 (a checker bug is reported, not hidden)
                outcome, detail = "crash", "checker failed: " + traceback.format_exc(limit=1)
            rows.append((case, outcome, detail, run.seconds))
            if echo:
                print(f"{case.number:>2} | {case.stage:<8} | {case.name:<48} | {outcome:<15} | "
                      f"{first_line(detail, detail_width)}", flush=True)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)
    return rows


def summary(rows: Sequence[tuple[Case, str, str, float]]) -> str:
    counts = {o: sum(r[1] == o for r in rows) for o in OUTCOMES}
    bad = sum(counts[o] for o in FAILURES)
    return ", ".join(f"{o}: {n}" for o, n in counts.items()) + f"  ->  {bad} failure(s)"


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fault_cases
    from _common import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated issue-14 case numbers (default: all)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--keep", default=None, help="keep the work folders in this directory")
    parser.add_argument("--no_ddp", action="store_true", help="skip the 2-process DDP run (about a minute)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    cases = fault_cases.all_cases()
    if args.only:
        wanted = {int(v) for v in args.only.split(",")}
        cases = [c for c in cases if c.number in wanted]
    if args.no_ddp:
        cases = [c for c in cases if "ddp" not in c.tags]
    if args.list:
        for c in cases:
            print(f"{c.number:>2} | {c.stage:<8} | {c.name}")
        return 0
    print(machine())
    print(f"{'#':>2} | {'stage':<8} | {'case':<48} | {'outcome':<15} | detail")
    t0 = time.perf_counter()
    rows = run_matrix(cases, fault_cases.Context, Path(args.keep) if args.keep else None)
    print(f"\n{summary(rows)}  ({len(rows)} runs in {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
