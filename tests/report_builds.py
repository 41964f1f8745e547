"""The comparison report built from synthetic runs once per session, for the tests/test_report_*.py files
and tests/test_headline.py: each names this module in ``pytest_plugins`` (a fixture imported into
several test modules would run once per module). Helpers: tests/report_helpers.py.
"""

from __future__ import annotations

import pytest
from conftest import write_params
from report_helpers import FRAMEWORKS, SEEDS, THREE, Built, build_here, outputs, read_built, report_step
from synthetic_runs import params_for, write_runs


@pytest.fixture(scope="session")
def built(tmp_path_factory, fake_cache) -> Built:
    """The report of 2 frameworks x 3 seeds, built through the step's command line."""
    root = tmp_path_factory.mktemp("report")
    params = params_for(FRAMEWORKS, SEEDS, epochs=4)
    write_params(root / "params.yaml", params)
    runs, preds = write_runs(root, fake_cache, params)
    out = outputs(root)
    result = report_step(root, runs, preds, fake_cache, out, "--log", root / "report.log")
    built = read_built(root, params, fake_cache, runs, preds, out)
    built.stdout = result.stdout
    return built


@pytest.fixture(scope="session")
def built3(tmp_path_factory, fake_cache) -> Built:
    """The report of 3 frameworks (torch, tensorflow and a made-up jax) x 3 seeds, through the Python API."""
    return build_here(tmp_path_factory.mktemp("report3"), fake_cache, params_for(THREE, SEEDS, epochs=4))
