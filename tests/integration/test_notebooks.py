"""Docs that run: the notebooks are stored WITH the outputs of a real run, and every one executes top to bottom.

The stored outputs (what people see where they browse the repository) come from
``python tools/notebooks/execute.py`` (full recipes; pictures downscaled to small JPEGs). The suite checks those
stored outputs (one top-to-bottom run, no error, pictures, a small file; the quickstart's BAS run a success
against its baselines, without sanity warnings), then executes each notebook again with ``WSOL_NOTEBOOK_SMOKE=1``
(the quickstart's tiny budget) to prove the code still runs.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
NAMES = ["evaluate_your_maps.ipynb", "predict_to_coco.ipynb", "quickstart.ipynb"]
BUDGET_S = 180
MAX_FILE_BYTES = 300_000
MAX_PICTURE_WIDTH = 480


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebook_cache")


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def printed(nb: nbformat.NotebookNode) -> str:
    """Everything a notebook's stored outputs print (streams and plain-text results)."""
    parts = []
    for cell in code_cells(nb):
        for out in cell.outputs:
            data = out.get("data", {})
            parts.append(out.get("text", "") if out.output_type == "stream" else data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_with_the_outputs_of_one_real_run(name: str):
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES  # every notebook is checked here
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), f"{name}: not one top-to-bottom run"
    assert not [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert "WSOL_NOTEBOOK_SMOKE" not in printed(nb)
    pictures = [o.data for c in cells for o in c.outputs if o.output_type in ("display_data", "execute_result")
                and ({"image/jpeg", "image/png"} & set(o.data))]
    assert pictures, f"{name}: no picture stored"
    for data in pictures:
        encoded = data.get("image/jpeg") or data["image/png"]
        width, _ = Image.open(io.BytesIO(base64.b64decode(encoded))).size
        assert width <= MAX_PICTURE_WIDTH, f"{name}: a {width} px wide picture (downscale it: render.jpeg_thumbnail)"
    assert path.stat().st_size < MAX_FILE_BYTES, f"{name}: {path.stat().st_size} bytes"


def test_the_stored_quickstart_shows_bas_learning_with_the_cpu_recipe():
    recipe = yaml.safe_load((REPO / "configs" / "bas_synthetic.yaml").read_text())
    text = printed(nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4))
    init = recipe["model"]["init_args"]
    assert (f"BAS {init['backbone']} from scratch, {recipe['trainer']['max_epochs']} epochs "
            f"({init['warmup_epochs']} warm-up)") in text  # the full recipe, not the smoke budget
    found = re.search(r"test MaxBoxAccV2 ([\d.]+) \(centre-Gaussian baseline ([\d.]+)\), PxAP ([\d.]+) \(chance "
                      r"([\d.]+)\), GT-known Loc ([\d.]+), top-1 cls ([\d.]+)", text)
    assert found, text[-2000:]
    v2, centre, pxap, chance, gt_known, top1 = (float(v) for v in found.groups())
    assert v2 > centre + 30 and pxap > chance + 40 and gt_known > 50 and top1 > 90  # learnt, not border-hot
    assert "sanity warnings: none" in text and "WSOL sanity warnings" not in text and "inverted maps?" not in text
    flags = re.findall(r"test/warn_\w+\s+([\d.]+)", text)  # Lightning's printed test table
    assert len(flags) == 3 and all(float(v) == 0.0 for v in flags), flags


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name: str, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WSOL_CACHE_DIR", str(cache_dir))  # the kernel inherits it: no write to ~/.cache
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WSOL_NOTEBOOK_SMOKE", "1")  # the quickstart's seconds-long budget
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=BUDGET_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    if name == "quickstart.ipynb":
        assert any((tmp_path / "quickstart_out" / "visualizations").glob("maps_epoch001.png"))
    if name == "predict_to_coco.ipynb":
        dataset = json.loads((tmp_path / "coco_out" / "predictions.json").read_text())
        assert all((tmp_path / "coco_out" / im["overlay"]).is_file() for im in dataset["images"])
        assert (tmp_path / "coco_test" / "coco_eval.json").is_file()
