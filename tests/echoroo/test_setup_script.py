"""scripts/setup picks a Python for which every pinned package has wheels: 3.11, 3.12 or 3.13.

It runs on a copy of the script, with stand-ins for the interpreters on PATH: each answers the
script's own version check as the Python it stands for, and creating the venv only records which
one was asked (then fails, so nothing is installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

STAND_IN = """#!/bin/sh
if [ "$1" = "-c" ]; then
    exec {python} -c "import sys; sys.version_info = ({major}, {minor}, 0, 'final', 0)
$2"
fi
echo "$0 $*" > {asked}
exit 3
"""


def setup(
    tmp_path: Path, interpreters: dict[str, tuple[int, int]], **env: str
) -> tuple[subprocess.CompletedProcess, str]:
    """Run a copy of scripts/setup with these stand-ins first on PATH; (the run, what created the venv)."""
    checkout, bin_dir, asked = tmp_path / "checkout", tmp_path / "bin", tmp_path / "asked"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / "requirements").mkdir()
    (checkout / "requirements" / "ml.txt").write_text("")
    shutil.copy(PROJECT_ROOT / "scripts" / "setup", checkout / "scripts" / "setup")
    bin_dir.mkdir()
    # Every name the script tries is a stand-in, so the machine's own Pythons are never picked.
    for name in {"python3.11", "python3.12", "python3.13", "python3", *interpreters}:
        major, minor = interpreters.get(name, (3, 10))
        path = bin_dir / name
        path.write_text(STAND_IN.format(python=sys.executable, major=major, minor=minor, asked=asked))
        path.chmod(0o755)
    run = subprocess.run(
        [str(checkout / "scripts" / "setup")],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return run, asked.read_text().strip() if asked.exists() else ""


@pytest.mark.parametrize("version", [(3, 11), (3, 12), (3, 13)])
def test_each_supported_python_is_taken(tmp_path, version):
    name = f"python{version[0]}.{version[1]}"
    run, asked = setup(tmp_path, {name: version, "python3": (3, 14)})
    assert run.returncode == 3, run.stderr
    assert asked == f"{tmp_path}/bin/{name} -m venv .venv"


def test_python3_is_taken_when_it_is_a_supported_version(tmp_path):
    run, asked = setup(tmp_path, {"python3": (3, 12)})
    assert run.returncode == 3 and asked == f"{tmp_path}/bin/python3 -m venv .venv"


def test_3_11_is_preferred_it_is_the_version_the_tests_run_on(tmp_path):
    run, asked = setup(tmp_path, {"python3.11": (3, 11), "python3.12": (3, 12), "python3.13": (3, 13)})
    assert asked == f"{tmp_path}/bin/python3.11 -m venv .venv"


def test_without_a_supported_python_it_says_which_are(tmp_path):
    run, asked = setup(tmp_path, {"python3": (3, 14), "python3.13": (3, 10)})
    assert run.returncode == 1 and asked == ""
    assert run.stderr.strip() == "Python 3.11, 3.12 or 3.13 is needed: set PYTHON=/path/to/python3.X"


def test_a_supported_python_named_by_python_is_taken(tmp_path):
    chosen = tmp_path / "bin" / "python3.13"
    run, asked = setup(tmp_path, {"python3.11": (3, 11), "python3.13": (3, 13)}, PYTHON=str(chosen))
    assert run.returncode == 3 and asked == f"{chosen} -m venv .venv"


def test_a_python_named_by_python_is_checked_too(tmp_path):
    old = tmp_path / "bin" / "python3.14"
    run, asked = setup(tmp_path, {"python3.12": (3, 12), "python3.14": (3, 14)}, PYTHON=str(old))
    assert run.returncode == 1 and asked == ""
    assert run.stderr.strip() == (
        f"Python 3.11, 3.12 or 3.13 is needed (PYTHON={old} is not one): set PYTHON=/path/to/python3.X"
    )
