"""The README's Python quickstart runs as written (house rule 7: docs that run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_quickstart_trains_and_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    quickstart = python_blocks()[0]
    assert "trainer.fit(model, datamodule=data)" in quickstart
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WSOL_CACHE_DIR", str(tmp_path / "cache"))
    namespace: dict = {}
    exec(compile(quickstart, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    from wsol_lightning.methods.baselines import centre_baseline_scores

    metrics = namespace["trainer"].callback_metrics
    baseline = centre_baseline_scores(namespace["data"])["maxboxacc_v2"]
    assert float(metrics["test/maxboxacc_v2"]) > baseline + 10
    assert (tmp_path / "cache").is_dir()  # the synthetic data went where the environment said
