"""README's results come from the ledger: its marked blocks are what
tools/readme_tables.py writes from the committed results/ledger.jsonl, and no accuracy
quoted in README or in a notebook's prose is missing from the ledger (or from the study's
own published figures)."""
import os
import re
import runpy
from types import SimpleNamespace

import pytest

from fmnist_c import ledger, report, study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEDGER = os.path.join(ROOT, "results", "ledger.jsonl")
readme_tool = SimpleNamespace(**runpy.run_path(os.path.join(ROOT, "tools", "readme_tables.py")))

# An accuracy, as prose quotes one: 0.ddd or 0.dddd, at least 0.5 (smaller figures are
# differences, gaps and standard deviations; a "mean ± std" pair is checked whole).
QUOTED = re.compile(r"(?<![\d.])0\.\d{3,4}(?![\d])")
PAIR = re.compile(r"(?<![\d.])(0\.\d{4}) ± (0\.\d{4})(?![\d])")
# Figures from outside that prose may quote, and why.
EXTERNAL = {
    "0.905": "the accuracy target set for the study's CNN",
    "0.940": "the accuracy target set for the improved CNN",
    "0.860": "Fashion-MNIST's benchmark: its best kNN (issue 15's target)",
    "0.897": "Fashion-MNIST's benchmark: its RBF SVC (issue 17's target)",
    "0.926": "Fashion-MNIST's benchmark: HOG + SVM (issue 17's target)",
    "0.950": "issue 18's target for seed 0 (the benchmark's MobileNet)",
    "0.948": "issue 18's target for the mean of seeds 0-2",
}


def _numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


@pytest.fixture(scope="module")
def held():
    """(figures, pairs): every number of the ledger's full-data rows, of their means over
    seeds and of the study's published results, as 3 and 4 decimals; every "mean ± std"."""
    rows = ledger.select(ledger.read(LEDGER), data="full")
    summaries = report.summarize(rows)
    values = list(_numbers([{k: v for k, v in r.items() if k != "params"} for r in rows]))
    values += list(_numbers(study.study_results()))
    values += [s["test_accuracy_mean"] for s in summaries]
    figures = {f"{v:.{d}f}" for v in values for d in (3, 4)}
    pairs = {(f"{s['test_accuracy_mean']:.4f}", f"{s['test_accuracy_std']:.4f}")
             for s in summaries if s["test_accuracy_std"] is not None}
    return figures, pairs


def unheld(text, held):
    figures, pairs = held
    bad = [m.group() for m in QUOTED.finditer(text)
           if float(m.group()) >= 0.5 and m.group() not in figures and m.group() not in EXTERNAL]
    bad += [m.group() for m in PAIR.finditer(text) if m.groups() not in pairs]
    return bad


def test_readme_blocks_are_what_the_ledger_gives():
    assert readme_tool.main(["--check"]) == 0, "run python tools/readme_tables.py"


def test_readme_quotes_only_figures_the_ledger_holds(held):
    with open(os.path.join(ROOT, "README.md")) as f:
        assert unheld(f.read(), held) == []


def test_notebook_prose_quotes_only_figures_the_ledger_holds(held):
    tool = runpy.run_path(os.path.join(ROOT, "tools", "make_notebooks.py"))
    for name, cells in tool["NOTEBOOKS"].items():
        prose = "\n".join(text for kind, text in cells() if kind == "md")
        assert unheld(prose, held) == [], name


def test_the_check_catches_a_figure_from_nowhere(held):
    assert unheld("the MLP gave 0.8926 ± 0.0025 (5 seeds) and the forest 0.8666", held) \
        == ["0.8926", "0.8926 ± 0.0025"]
