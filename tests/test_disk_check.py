"""`make setup` stops before pip when the disk cannot hold a new .venv/ (tools/check_free_disk.py).

The thresholds here are made from the disk's own free space at test time (free + 1 TiB cannot be
met, 0 always can), so the tests do not depend on how full the machine is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import REPO, run

CHECK = ["python", str(REPO / "tools" / "check_free_disk.py")]
TIB_IN_GIB = 1024


def free_gib(path: Path) -> float:
    return shutil.disk_usage(path).free / 1024**3


def test_too_little_space_fails_with_what_is_needed_free_and_what_to_do(tmp_path):
    need = round(free_gib(tmp_path)) + TIB_IN_GIB
    result = run([*CHECK, str(tmp_path / "not-yet" / ".venv"), str(need)], tmp_path, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    # The folder does not exist yet: the check measures the nearest one that does.
    assert f"needs about {need} GiB free on the disk of {tmp_path}," in result.stderr
    assert "GiB are free" in result.stderr and "No space left on device" in result.stderr
    assert "make setup again" in result.stderr


def test_enough_space_passes_silently(tmp_path):
    result = run([*CHECK, str(tmp_path / ".venv"), "0"], tmp_path, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_make_setup_stops_before_creating_the_venv(tmp_path):
    for name in ("Makefile", "pyproject.toml", "tools/check_free_disk.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, tmp_path / name)
    # No pins: were the check skipped, pip would install nothing (not 12 GB) and the test fail fast.
    (tmp_path / "requirements.txt").write_text("")
    need = round(free_gib(tmp_path)) + TIB_IN_GIB
    result = run(["make", "setup", f"SETUP_GIB={need}"], tmp_path, check=False)
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"needs about {need} GiB free" in result.stderr
    assert not (tmp_path / ".venv").exists()
