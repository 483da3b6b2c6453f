"""Replays tests/corpus: inputs found by fuzzing the IDX reader and the model loader
(tools/fuzz.py) plus hand-made ones (crafted-*). Each must give data or a ValueError,
exactly as while fuzzing; under the ASan build (.ci/run) also without a memory error."""
import importlib.util
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
spec = importlib.util.spec_from_file_location(
    "fuzz", os.path.join(os.path.dirname(HERE), "tools", "fuzz.py"))
fuzz = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fuzz)


def inputs(target):
    folder = os.path.join(CORPUS, target)
    return [pytest.param(os.path.join(folder, name), id=name)
            for name in sorted(os.listdir(folder))]


@pytest.mark.parametrize("path", inputs("idx"))
def test_idx_reader_gives_data_or_value_error(path):
    fuzz.check_idx(path)


@pytest.mark.parametrize("path", inputs("model"))
def test_model_loader_gives_a_working_model_or_value_error(path):
    with open(path, "rb") as f:
        raw = f.read()
    from_file, from_path = fuzz.check_model(raw), fuzz.check_model(path)
    assert (from_file is None) == (from_path is None)
    if os.path.basename(path).startswith("crafted-"):  # each made to be refused
        assert from_path is None
