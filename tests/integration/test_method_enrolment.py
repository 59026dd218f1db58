"""Every method in ``wsol_lightning.methods.__all__`` is enrolled without editing a test or a benchmark.

* The CLI runs fit, validate, test and predict for each method (CAM's full slice is in ``test_cam_cli.py``;
  DDP fit + test for each method in ``test_ddp_methods.py``, which enumerates the same list).
* Each method has a CPU recipe ``configs/<method>_synthetic*.yaml`` naming its class, and
  ``benchmarks/generalization.py`` discovers it from there (phases ordered by their ``init_from``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration import test_generalization_benchmark
from tests.integration.test_ddp_methods import SMALL_METHOD_ARGS, methods
from wsol_lightning.cli import WSOLCLI

ROOT = Path(__file__).resolve().parents[2]
bench = test_generalization_benchmark.bench  # the benchmark script loaded as a module (one fixture for both files)


def test_every_method_has_a_cpu_recipe_naming_it():
    for method in methods():
        configs = sorted((ROOT / "configs").glob(f"{method.lower()}_synthetic*.yaml"))
        assert configs, f"{method}: no configs/{method.lower()}_synthetic*.yaml (the benchmark would miss it)"
        for path in configs:
            class_path = yaml.safe_load(path.read_text())["model"]["class_path"]
            assert class_path.rsplit(".", 1)[-1] == method, f"{path.name} trains {class_path}, not {method}"


def test_benchmark_discovers_every_method_with_phases_in_order(bench):
    assert list(bench.METHODS)[0] == "cam"
    assert {m.lower() for m in methods()} <= set(bench.METHODS)
    assert bench.METHODS["ornet"] == ["ornet_synthetic_evaluator", "ornet_synthetic_coarse", "ornet_synthetic_refine"]


def test_phase_order_follows_init_from_not_names(bench, tmp_path: Path):
    def write(name: str, init_from: str | None) -> None:
        args = {"init_from": init_from} if init_from else {}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"model": {"init_args": args}}))

    write("zeta_synthetic_a", "runs/zeta/c.ckpt")
    write("zeta_synthetic_b", None)
    write("zeta_synthetic_c", "runs/zeta/b.ckpt")
    write("alpha_synthetic", None)
    write("cam_synthetic", None)
    found = bench.discover_methods(tmp_path)
    assert found == {"cam": ["cam_synthetic"], "alpha": ["alpha_synthetic"],
                     "zeta": ["zeta_synthetic_b", "zeta_synthetic_c", "zeta_synthetic_a"]}
    write("zeta_synthetic_b", "runs/zeta/a.ckpt")
    with pytest.raises(ValueError, match="cycle"):
        bench.discover_methods(tmp_path)


@pytest.mark.parametrize("method", [m for m in methods() if m != "CAM"])
def test_cli_fit_validate_test_predict_every_method(method: str, tmp_path: Path, synthetic_cache: Path):
    common = ["--model", method, "--model.backbone", "resnet10t", *SMALL_METHOD_ARGS.get(method, []),
              "--model.cam_curve_interval", "0.05", "--data", "SyntheticDataModule", "--data.data_dir",
              str(synthetic_cache), "--data.num_classes", "3", "--data.images_per_class", "6",
              "--data.val_per_class", "1", "--data.image_size", "32", "--data.batch_size", "4",
              "--data.num_workers", "0", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
              "--trainer.default_root_dir", str(tmp_path)]
    fit = WSOLCLI(args=["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                        "--trainer.callbacks+=ModelCheckpoint", f"--trainer.callbacks.dirpath={tmp_path / 'ckpt'}",
                        "--trainer.callbacks.save_last=true"])
    assert fit.trainer.global_step > 0
    assert "test/maxboxacc_v2" in fit.trainer.callback_metrics
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    validate = WSOLCLI(args=["validate", *common, "--ckpt_path", str(ckpt)])
    assert "val/pxap" in validate.trainer.callback_metrics
    predict = WSOLCLI(args=["predict", *common, "--ckpt_path", str(ckpt)])
    first = predict.trainer.predict_loop.predictions[0]
    assert first["maps"].shape[-2:] == (32, 32)
    assert 0 <= float(first["maps"].min()) and float(first["maps"].max()) <= 1
    assert len(first["boxes"]) == first["logits"].shape[0]
