"""The non-editable install (what the Dockerfile and `pip install .` do) ships everything the
running service needs: every package, the detector model and rules, the SQL migrations."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("casemate-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_ships_every_module_and_data_file(wheel):
    names = set(wheel.namelist())
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pkg in (pattern.rstrip("*") for pattern in include):
        for src in (ROOT / pkg).rglob("*.py"):
            rel = src.relative_to(ROOT).as_posix()
            if "__pycache__" not in rel:
                assert rel in names, f"{rel} is missing from the wheel"
    assert "detectors/data/injection_model.npz" in names and "detectors/data/NOTICE" in names
    for sql in (ROOT / "admin_api" / "migrations").rglob("*.sql"):
        assert sql.relative_to(ROOT).as_posix() in names


def test_wheel_declares_the_console_script(wheel):
    entry = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    text = wheel.read(entry).decode()
    assert re.search(r"^casemate = proxy\.cli:main$", text, re.M)
    assert re.search(r"^casemate-verify = casemate_verify\.cli:main$", text, re.M)


def test_dockerfile_installs_the_way_make_run_does():
    text = (ROOT / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "python -m venv .venv" in text and re.search(r"\.venv/bin/pip install [^\n]*\.\s*$", text, re.M)
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert f"COPY {pattern.rstrip('*')} " in text, f"Dockerfile does not copy {pattern}"
    user = re.search(r"^USER (\S+)", text, re.M)
    assert user and user.group(1) not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/ready", text, re.M)
    assert re.search(r"^EXPOSE 8080 8081$", text, re.M)
    assert 'ENTRYPOINT ["casemate"]' in text
    makefile = (ROOT / "Makefile").read_text()
    assert "casemate serve --demo" in makefile and "-m venv" in makefile
