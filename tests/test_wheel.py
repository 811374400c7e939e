"""The project as a real package: the wheel holds the code and the SQL, and an
installed ``flp`` works from any folder, without the checkout."""

from __future__ import annotations

import json
import os
import shutil
import site as site_module
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
CODE_PACKAGES = ("orchestrator", "reports")  # top-level folders that are Python packages
SQL_PACKAGE, SQL_FOLDER = "flp_db", "db"
# What a build must not pick up from a working checkout.
NOT_SOURCE = (".git", ".flp", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "outbox")


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def source_files(folder: Path) -> set[str]:
    """Files under ``folder`` (relative, posix), without caches."""
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_pyproject_declares_every_package_and_every_sql_file():
    # setuptools cannot find a package under another folder's name (flp_db is db/),
    # so the list is explicit; this keeps a new subpackage or file type from being left out.
    packages = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in CODE_PACKAGES
        for p in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert set(SETUPTOOLS["packages"]) == packages | {SQL_PACKAGE}
    assert SETUPTOOLS["package-dir"] == {SQL_PACKAGE: SQL_FOLDER}
    sql_root = ROOT / SQL_FOLDER
    shipped = {
        p.relative_to(sql_root).as_posix()
        for pattern in SETUPTOOLS["package-data"][SQL_PACKAGE]
        for p in sql_root.glob(pattern)
    }
    modules = {name for name in source_files(sql_root) if "/" not in name and name.endswith(".py")}
    assert source_files(sql_root) - modules - shipped == set()


def test_python_dash_m_orchestrator_is_the_flp_command(tmp_path):
    result = run([sys.executable, "-m", "orchestrator", "--help"], cwd=ROOT)
    assert result.stdout.startswith("usage: flp ")
    assert "demo" in result.stdout and "db" in result.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with only the wheel installed; this interpreter's packages
    (the dependencies) are visible through a .pth file, which, unlike
    ``--system-site-packages``, does not run their .pth files, so an editable
    install of the checkout stays invisible."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "wheel", str(source), "-w", str(work / "dist"), "--no-deps", "-q"], work)
    (wheel,) = (work / "dist").glob("flp_jobs-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in CODE_PACKAGES:
        expected = {f"{top}/{name}" for name in source_files(source / top)}
        assert expected - names == set(), top
    expected = {f"{SQL_PACKAGE}/{name}" for name in source_files(source / SQL_FOLDER)}
    assert expected - names == set()
    for required in (
        "flp_db/procedures/RELEASED.sha256",
        "flp_db/migrations/env.py",
        "flp_db/migrations/script.py.mako",
        "flp_db/migrations/versions/0001_foundation.py",
        "orchestrator/dev/seed/__init__.py",
        "orchestrator/__main__.py",
    ):
        assert required in names, required

    env = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(env)], work)
    python = env / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work)
    # Every site folder of this interpreter (a venv with system site packages has two).
    ours = sorted(
        {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site_module.getsitepackages()}
    )
    (Path(site.stdout.strip()) / "_flp_test_dependencies.pth").write_text("\n".join(ours) + "\n")
    run([*pip, "--python", str(python), "install", "--no-deps", "-q", str(wheel)], work)
    return env


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLP_", "PYTHON"))}
    return env | extra


@pytest.mark.slow
def test_the_installed_wheel_runs_from_another_folder_without_the_checkout(venv, tmp_path, data_dir):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    python, flp = str(venv / "bin" / "python"), str(venv / "bin" / "flp")
    probe = (
        "import json, sys, orchestrator, orchestrator.dev.seed as s, orchestrator.db.files as f; "
        "print(json.dumps({'files': [orchestrator.__file__, s.__file__, str(f.SQL_ROOT)], "
        "'path': sys.path, 'finders': [repr(m) for m in sys.meta_path]}))"
    )
    seen = json.loads(run([python, "-c", probe], elsewhere, clean_env()).stdout)
    for path in seen["files"]:
        assert Path(path).resolve().is_relative_to(venv.resolve()), path
    # Nothing reaches the checkout: not its folder on the path, not an editable finder.
    others = [Path(p) for p in seen["path"] if p and not Path(p).resolve().is_relative_to(venv.resolve())]
    assert not [p for p in others if (p / "orchestrator" / "__init__.py").exists()]
    assert not [m for m in seen["finders"] if "editable" in m.lower()]

    script = run([flp, "db", "script", "--engine", "mssql"], elsewhere, clean_env())
    assert "CREATE OR ALTER PROCEDURE" in script.stdout
    assert "GO" in script.stdout.splitlines()

    run([python, "-m", "orchestrator", "--help"], elsewhere, clean_env())
    demo = run([flp, "demo", "--patients", "200"], elsewhere, clean_env(FLP_DATA_DIR=str(data_dir)))
    assert "archive_aim" in demo.stdout + demo.stderr
    assert not (elsewhere / ".flp").exists()  # FLP_DATA_DIR was honoured
