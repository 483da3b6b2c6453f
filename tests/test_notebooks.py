"""Every CRISP-DM notebook runs top to bottom without a cell error (quick mode: fewer seeds
and epochs), and the committed notebooks are what tools/make_notebooks.py writes."""
import os
import runpy
from types import SimpleNamespace

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for needed in ("ipykernel", "nbclient", "nbformat"):
    pytest.importorskip(needed, reason=f"{needed} is not installed (pip install '.[notebooks]')")
nbformat = pytest.importorskip("nbformat")
tool = SimpleNamespace(**runpy.run_path(os.path.join(ROOT, "tools", "make_notebooks.py")))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """Where 05 saves its networks and 06 loads them (run in name order: 05 before 06)."""
    return tmp_path_factory.mktemp("notebook_models")


@pytest.mark.parametrize("name", sorted(tool.NOTEBOOKS))
def test_notebook_runs_without_errors(name, monkeypatch, models_dir):
    monkeypatch.setenv(tool.QUICK_ENV, "1")
    monkeypatch.setenv(tool.MODELS_ENV, str(models_dir))
    # the kernel imports the fmnist_c this test imports (installed or the source tree)
    import fmnist_c
    here = os.path.dirname(os.path.dirname(fmnist_c.__file__))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    # a cell may take long: 06 fits every model on the full data (the boosted trees at up to
    # 200 rounds, minutes on a busy machine); the test is about errors, not time
    nb = tool.execute(tool.build(name), timeout=1800)  # raises CellExecutionError on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "Data: the full Fashion-MNIST" in outputs[0].text or "embedded" in outputs[0].text


@pytest.mark.parametrize("name", sorted(tool.NOTEBOOKS))
def test_committed_notebook_matches_its_generator(name):
    path = os.path.join(tool.NOTEBOOK_DIR, name + ".ipynb")
    committed = nbformat.read(path, as_version=4)
    built = tool.build(name)
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in built.cells], \
        f"{path} is stale: run python tools/make_notebooks.py --execute --only {name}"
    assert all(c.execution_count for c in committed.cells if c.cell_type == "code"), \
        f"{path} was committed without running every cell"
    assert not [o for c in committed.cells if c.cell_type == "code" for o in c.outputs
                if o.output_type == "error"]
