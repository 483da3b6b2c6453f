"""The fmnist-c command and the study pipeline behind it."""
import json
import subprocess
import sys

import pytest

import fmnist_c
from fmnist_c import cli, study


def test_reproduce_on_sample_writes_everything(tmp_path, capsys):
    assert cli.main(["reproduce", "--models", "lr", "--sample", "--seeds", "2",
                     "--out", str(tmp_path), "--quiet"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["data"] == "sample" and res["n_test"] == 600 and res["protocol"] == "study"
    lr = res["models"]["lr"]
    assert len(lr["runs"]) == 2 and lr["runs"][0]["seed"] == 0 and lr["runs"][1]["seed"] == 1
    assert 0.7 < lr["test_accuracy_mean"] <= 1 and lr["test_accuracy_std"] >= 0
    assert lr["study_test_accuracy"] == pytest.approx(0.8414, abs=1e-4)
    assert sum(map(sum, lr["confusion_matrix_last_seed"])) == 600
    assert (tmp_path / "confusion_lr.png").stat().st_size > 10_000
    assert (tmp_path / "history_lr.png").stat().st_size > 10_000  # LR trains by epochs
    assert (tmp_path / "comparison.png").stat().st_size > 10_000
    md = (tmp_path / "results.md").read_text()
    assert "| Logistic regression (SGD) |" in md and "0.8414" in md
    assert "Logistic regression (SGD)" in capsys.readouterr().out


def test_reproduce_official_protocol_on_sample(tmp_path):
    # the sample's images from the official test file are the test set; 10% of those from
    # the official training file are the validation set
    _, _, indices = fmnist_c.load_sample(return_indices=True)
    n_train = int((indices < 60000).sum())
    assert cli.main(["reproduce", "--models", "lr", "--sample", "--protocol", "official",
                     "--out", str(tmp_path), "--quiet"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["protocol"] == "official" and "official test images" in res["split"]
    assert (res["n_train"], res["n_val"], res["n_test"]) == (n_train - 260, 260, 3000 - n_train)
    assert sum(map(sum, res["models"]["lr"]["confusion_matrix_last_seed"])) == 3000 - n_train
    assert "| Logistic regression (SGD) | official |" in (tmp_path / "results.md").read_text()
    with pytest.raises(ValueError, match="protocol"):
        study.load_split("kaggle", sample=True)


def test_reproduce_official_all_protocol_trains_on_every_official_training_image(tmp_path):
    _, _, indices = fmnist_c.load_sample(return_indices=True)
    n_train = int((indices < 60000).sum())
    assert cli.main(["reproduce", "--models", "lr", "--sample", "--protocol", "official-all",
                     "--out", str(tmp_path), "--quiet"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert (res["n_train"], res["n_val"], res["n_test"]) == (n_train, 0, 3000 - n_train)
    assert res["models"]["lr"]["runs"][0]["val_accuracy"] is None
    # models that choose their depth or epoch on the validation set are refused
    for key, what in (("rf", "depth"), ("cnn", "best epoch")):
        with pytest.raises(ValueError, match=f"{key} \\(its {what}\\)"):
            study.reproduce(models=["lr", key], sample=True, out=str(tmp_path), verbose=0,
                            protocol="official-all")


def test_reproduce_falls_back_to_sample_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(study, "find_data", lambda *a, **k: None)
    study.reproduce(models=["lr"], out=str(tmp_path), verbose=0)
    assert "embedded sample" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.json").read_text())["data"] == "sample"


def test_reproduce_rejects_unknown_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--models", "no-such-model", "--out", str(tmp_path)])
    assert "unknown model" in capsys.readouterr().err


def test_info_and_show_config(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert fmnist_c._core.gemm_kernel() in out and "openmp_threads" in out and "numpy" in out
    fmnist_c.show_config()
    assert "data" in capsys.readouterr().out


def test_python_dash_m_entry_point(tmp_path):
    # cwd elsewhere: `-m` puts the cwd first on sys.path, and the source tree has no _core
    out = subprocess.run([sys.executable, "-m", "fmnist_c", "info"], capture_output=True,
                         text=True, check=True, cwd=tmp_path).stdout
    assert "simd" in out


def test_public_names():
    for name in ("load_fashion_mnist", "load_sample", "study_split", "CLASS_NAMES",
                 "SGDLogisticRegression", "show_config", "__version__"):
        assert hasattr(fmnist_c, name)
    assert len(fmnist_c.CLASS_NAMES) == 10
