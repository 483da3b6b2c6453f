"""The results ledger: what a row holds, atomic and concurrent appends, `fmnist-c reproduce`
writing rows, `fmnist-c verify` re-running them, and the committed ledger's rows."""
import json
import multiprocessing
import os
import subprocess

import numpy as np
import pytest

from fmnist_c import cli, ledger, report, study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(ROOT, "results", "ledger.jsonl")
# what the issue asks every row to hold
FIELDS = {"model", "params", "overrides", "protocol", "data", "seed", "test_accuracy",
          "macro_f1", "test_ci95", "fit_seconds", "predict_us_per_image", "model_bytes",
          "fmnist_c", "git_commit", "cpu", "kernels", "threads", "date", "command",
          "load_avg_1min", "predictions_md5", "n_train", "n_val", "n_test"}


@pytest.fixture(scope="module")
def sample_ledger(tmp_path_factory):
    """A ledger written by `fmnist-c reproduce` on the sample: lr over seeds 0 and 2 on
    both protocols (lr chooses nothing on validation: study and official-all), and one
    StudyForest fit."""
    out = tmp_path_factory.mktemp("reproduce")
    assert cli.main(["reproduce", "--models", "lr", "--sample", "--seeds", "0,2",
                     "--protocol", "both", "--out", str(out), "--quiet"]) == 0
    assert cli.main(["reproduce", "--models", "rf", "--sample", "--out", str(out),
                     "--quiet"]) == 0
    return out / "ledger.jsonl"


def test_reproduce_appends_a_full_row_per_fit(sample_ledger):
    rows = ledger.read(str(sample_ledger))
    assert [(r["model"], r["protocol"], r["seed"]) for r in rows] == [
        ("lr", "study", 0), ("lr", "study", 2), ("lr", "official-all", 0), ("lr", "official-all", 2),
        ("rf", "study", 0)]
    for r in rows:
        assert FIELDS <= r.keys(), FIELDS - r.keys()
        assert r["data"] == "sample" and r["params"]["random_state"] == r["seed"]
        assert r["command"].startswith("fmnist-c reproduce --models ")
        lo, hi = r["test_ci95"]
        assert 0.5 < lo < r["test_accuracy"] < hi < 1 and 0.5 < r["macro_f1"] < 1
        assert r["fit_seconds"] > 0 and r["predict_us_per_image"] > 0 and r["model_bytes"] > 0
        assert r["kernels"]["gemm"] and r["threads"] >= 1 and len(r["load_avg_1min"]) == 2
    assert rows[0]["n_test"] == 600 and rows[2]["n_test"] < 600
    sweep = rows[-1]["extra"]["depth_sweep"]
    assert rows[-1]["extra"]["depth_sweep"]["val_chosen_test_accuracy"] == rows[-1]["test_accuracy"]
    assert len(sweep["test_accuracy"]) == len(study.STUDY_RF_DEPTHS)


def test_verify_finds_rows_identical(sample_ledger, capsys):
    assert cli.main(["verify", "--ledger", str(sample_ledger), "--sample", "--all"]) == 0
    out = capsys.readouterr().out
    assert out.count("identical") == 6 and "5 rows re-run" in out
    # without --all: seed 0 of the cheap models on the study split
    found = study.verify(str(sample_ledger), sample=True, log=lambda *a: None)
    assert [(r["model"], r["protocol"], r["seed"]) for r, _, _ in found] == [
        ("lr", "study", 0), ("rf", "study", 0)]


def test_verify_fails_on_a_row_that_differs(sample_ledger, tmp_path, capsys):
    rows = ledger.read(str(sample_ledger))[:1]
    rows[0]["predictions_md5"] = "0" * 32
    path = str(tmp_path / "ledger.jsonl")
    ledger.append(rows[0], path)
    assert cli.main(["verify", "--ledger", path, "--sample"]) == 1
    assert "differs" in capsys.readouterr().out
    # a kernel added since the row was made does not matter
    rows[0]["kernels"] = {k: v for k, v in list(rows[0]["kernels"].items())[1:]}
    ledger.append(rows[0], path)
    assert cli.main(["verify", "--ledger", path, "--sample"]) == 1
    # made on other SIMD kernels: reported, but equality is not required
    rows[0]["kernels"] = {"gemm": "some-other-cpu"}
    rows[0]["predictions_md5"] = "1" * 32  # other kernels, other predictions
    rows[0]["date"] = "9999-01-01T00:00:00+00:00"  # the newer row of the same run
    ledger.append(rows[0], path)
    assert cli.main(["verify", "--ledger", path, "--sample"]) == 0
    assert "differs-other-kernels" in capsys.readouterr().out


def test_verify_says_when_nothing_matches(tmp_path, capsys):
    assert cli.main(["verify", "--ledger", str(tmp_path / "none.jsonl"), "--sample"]) == 1
    assert "no rows" in capsys.readouterr().err


def test_latest_keeps_the_newest_row_of_each_run():
    def row(seed, date, acc):
        return {"model": "lr", "protocol": "study", "data": "full", "seed": seed,
                "overrides": {}, "date": date, "test_accuracy": acc}
    rows = [row(0, "2026-01-02", 0.1), row(1, "2026-01-01", 0.2), row(0, "2026-01-01", 0.3),
            row(0, "2026-01-03", 0.4)]
    assert [(r["seed"], r["test_accuracy"]) for r in ledger.latest(rows)] == [(0, 0.4), (1, 0.2)]


def test_a_rerun_with_the_same_predictions_confirms_the_row_it_repeats():
    def row(date, md5, fit):
        return {"model": "lr", "protocol": "study", "data": "full", "seed": 0, "overrides": {},
                "date": date, "predictions_md5": md5, "fit_seconds": fit}
    first, again, changed = row("2026-01-01", "a", 1.0), row("2026-01-02", "a", 9.0), row("2026-01-03", "b", 2.0)
    back = row("2026-01-04", "a", 3.0)
    assert ledger.latest([first, again]) == [first]  # the re-run's times do not replace it
    assert ledger.latest([again, first]) == [first]  # whatever the file order
    assert ledger.latest([first, again, changed]) == [changed]  # a different fit does
    assert ledger.latest([back, first, changed, again]) == [back]  # and back to the first fit
    recorded = dict(again, val_accuracy=0.5)  # same predictions, a corrected record
    assert ledger.latest([first, recorded]) == [recorded]


def test_append_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "ledger.jsonl")
    ledger.append({"a": 1}, path)
    before = open(path, "rb").read()

    def crash(*args):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        ledger.append({"a": 2}, path)
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["ledger.jsonl", "ledger.jsonl.lock"]  # no temp left
    with pytest.raises(ValueError):  # NaN is not JSON: nothing written
        ledger.append({"a": float("nan")}, path)
    assert open(path, "rb").read() == before


def _append_many(path, who, n):
    for i in range(n):
        ledger.append({"who": who, "i": i, "pad": "x" * 5000}, path)


def test_concurrent_appends_lose_nothing(tmp_path):
    path = str(tmp_path / "ledger.jsonl")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = ledger.read(path)
    assert sorted((r["who"], r["i"]) for r in rows) == [(w, i) for w in range(4) for i in range(15)]


@pytest.mark.parametrize("text, seeds", [("3", [0, 1, 2]), ("1-3", [1, 2, 3]), ("0,4", [0, 4]),
                                         ("0,2-3", [0, 2, 3])])
def test_seeds_argument(text, seeds):
    assert study.seed_list(cli._seeds(text)) == seeds


def test_seeds_argument_refused(capsys):
    for bad in ("0", "a", "1-x"):
        with pytest.raises(SystemExit):
            cli.main(["reproduce", "--seeds", bad])
        assert "expected a count" in capsys.readouterr().err


def test_committed_ledger_rows_are_complete():
    rows = ledger.read(COMMITTED)
    assert rows, f"{COMMITTED} holds no rows"
    for r in rows:
        assert FIELDS <= r.keys(), (r["model"], FIELDS - r.keys())
        assert r["model"] in study.MODELS and r["protocol"] in study.PROTOCOLS
        assert r["data"] == "full", "the committed ledger holds full-data runs only"
        assert not r["git_commit"] or not r["git_commit"].endswith("-dirty"), \
            f"{r['model']} seed {r['seed']} was made from uncommitted code"
    assert json.dumps(rows)  # every row is plain JSON


def test_report_renders_the_ledger(sample_ledger, tmp_path):
    out = tmp_path / "report"
    assert cli.main(["report", "--ledger", str(sample_ledger), "--out", str(out), "--sample"]) == 0
    md = (out / "results.md").read_text()
    rows = ledger.read(str(sample_ledger))
    lr = [r["test_accuracy"] for r in rows if r["model"] == "lr" and r["protocol"] == "study"]
    assert f"| Logistic regression (SGD) | study | {np.mean(lr):.4f} ± {np.std(lr, ddof=1):.4f} " \
           "(2 seeds) |" in md
    assert "| Logistic regression (SGD) | official-all |" in md
    assert "| Random forest (depth tuned on validation) | study | " in md and "0.8718 |" in md
    for name in ("study", "official"):
        assert (out / f"frontier_{name}.png").stat().st_size > 20_000
    page = (out / "results.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2 and "<td>official-all</td>" in page
    with pytest.raises(SystemExit):  # no full-data rows in it
        cli.main(["report", "--ledger", str(sample_ledger), "--out", str(out)])


def test_pareto_keeps_what_nothing_beats():
    points = [(1.0, 0.85), (2.0, 0.84), (3.0, 0.90), (3.0, 0.89), (10.0, 0.91), (0.5, 0.80)]
    assert report.pareto(points) == [5, 0, 2, 4]


def test_both_protocols_plan():
    # the official test set: "official" for a model choosing on validation, else "official-all"
    assert study.protocol_plan("both", ["lr", "rf", "cnn"]) == [
        ("study", ["lr", "rf", "cnn"]), ("official", ["rf", "cnn"]), ("official-all", ["lr"])]
    with pytest.raises(ValueError, match="protocol"):
        study.protocol_plan("kaggle", ["lr"])


def test_appended_rows_do_not_make_the_commit_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "ledger.jsonl").write_text("{}\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    clean = ledger._git_commit(str(tmp_path))
    assert clean and not clean.endswith("-dirty")
    with open(tmp_path / "results" / "ledger.jsonl", "a") as f:
        f.write("{}\n")  # a row this run appended: the code is still the commit's
    assert ledger._git_commit(str(tmp_path)) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert ledger._git_commit(str(tmp_path)) == clean + "-dirty"
