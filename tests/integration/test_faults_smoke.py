"""Smoke test of benchmarks/faults.py: the classifier's labels on hand-made runs and on a few real matrix rows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.append(str(BENCHMARKS))  # last: benchmarks/data.py, metrics.py must not shadow anything

import fault_cases  # noqa: E402
import faults  # noqa: E402
from faults import Case, classify, execute  # noqa: E402


def raise_(error: BaseException):
    def action(work, ctx):
        raise error

    return action


def test_classifier_labels_on_hand_made_runs(tmp_path: Path):
    named = Case(5, "named", "fit", raise_(ValueError("images.txt:3: bad label 'x'")), ["images.txt", r":3\b"])
    unnamed = Case(5, "unnamed", "fit", raise_(ValueError("invalid literal for int()")), ["images.txt"])
    wrong = Case(4, "wrong", "fit", lambda w, c: 7, [], lambda run: ("silently wrong", f"used {run.value}"))
    lost = Case(7, "lost", "predict", raise_(RuntimeError("boom")), [], None, lambda run: ("lost", "no output"))
    exits = Case(10, "exits", "fit", raise_(SystemExit(2)), ["image_size"])
    labels = {}
    for case in (named, unnamed, wrong, lost, exits):
        (tmp_path / case.name).mkdir()
        labels[case.name] = classify(case, execute(case, tmp_path / case.name, None))
    assert labels["named"] == ("clear error", "ValueError: images.txt:3: bad label 'x'")
    assert labels["unnamed"][0] == "crash" and "images.txt" in labels["unnamed"][1]  # says what it missed
    assert labels["wrong"] == ("silently wrong", "used 7")
    assert labels["lost"] == ("lost", "no output")
    assert labels["exits"][0] == "crash"  # a non-zero exit whose output names nothing


def test_a_config_dump_does_not_count_as_naming_the_culprit(tmp_path: Path):
    error = ValueError("Does not validate\nGiven value: Namespace(pretrained='/x/evil.pth')")
    case = Case(1, "dump", "fit", raise_(error), [r"evil\.pth"])
    assert classify(case, execute(case, tmp_path, None))[0] == "crash"


@pytest.mark.parametrize("name, label", [
    ("predict: a corrupt file in the folder", "skipped+counted"),
    ("predict: crash mid-run", "ok"),
    ("predict: no writer given", "ok"),
    ("server closes early, no checksum", "clear error"),
    ("truncated archive", "clear error"),
])
def test_matrix_rows_with_known_labels(tmp_path_factory: pytest.TempPathFactory, shared_context, name: str,
                                       label: str):
    case = next(c for c in fault_cases.all_cases() if c.name == name)
    rows = faults.run_matrix([case], lambda root: shared_context, root=tmp_path_factory.mktemp("faults"),
                             echo=False)
    assert [(r[0].name, r[1]) for r in rows] == [(name, label)], rows[0][2]


@pytest.fixture(scope="module")
def shared_context(tmp_path_factory: pytest.TempPathFactory) -> fault_cases.Context:
    """One context (one shared checkpoint fit) for the real rows."""
    return fault_cases.Context(tmp_path_factory.mktemp("faults_context"))
