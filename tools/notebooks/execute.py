"""Execute the notebooks top to bottom and store them WITH their outputs (what people see where they browse them).

    python tools/notebooks/execute.py                     # every notebook in notebooks/
    python tools/notebooks/execute.py notebooks/quickstart.ipynb

Each notebook runs in a fresh kernel in a temporary working folder (the files it writes stay out of the
repository), with W&B disabled and the generated datasets in ``$WSOL_CACHE_DIR`` (default: the user cache). The
stored outputs are those of this real execution; only volatile metadata (per-cell timings, kernel ids) is dropped
so that re-running gives a small diff. The notebooks keep their pictures small themselves (downscaled JPEG).
The test suite (tests/integration/test_notebooks.py) executes them again with ``WSOL_NOTEBOOK_SMOKE=1`` (a tiny
budget) and checks the stored outputs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


def clean_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop volatile metadata: execution timings of every cell, widget state."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)
    nb.metadata.pop("widgets", None)
    return nb


def execute(path: Path, timeout: int = 1800) -> tuple[nbformat.NotebookNode, float]:
    """Run ``path`` in a fresh kernel inside a temporary folder; return the notebook with outputs and seconds."""
    nb = nbformat.read(path, as_version=4)
    env = {"WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1"}
    previous = {k: os.environ.get(k) for k in (*env, "WSOL_NOTEBOOK_SMOKE")}
    os.environ.update(env)
    os.environ.pop("WSOL_NOTEBOOK_SMOKE", None)  # the full run, never the test suite's tiny one
    try:
        with tempfile.TemporaryDirectory(prefix="wsol_nb_") as work:
            start = time.perf_counter()
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": work}}).execute()
            seconds = time.perf_counter() - start
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    if errors:
        raise RuntimeError(f"{path}: a cell failed: {errors[0].get('ename')}: {errors[0].get('evalue')}")
    return clean_metadata(nb), seconds


def main(argv: list[str] | None = None) -> None:
    """Execute the given notebooks (default: all of notebooks/) and write them back with their outputs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    for path in args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb")):
        nb, seconds = execute(path.resolve(), args.timeout)
        nbformat.validate(nb)
        nbformat.write(nb, path)
        print(f"{path}: executed in {seconds:.0f} s, {path.stat().st_size / 1024:.0f} KB with outputs")


if __name__ == "__main__":
    main()
