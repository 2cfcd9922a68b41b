"""The project is a package: ``pip install .`` gives every command, with the migrations, and no
script reaches for the checkout through ``sys.path``."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
MAPPED = {"scrapers.cli": "scripts", "scrapers.sql": "migrations"}


def test_every_package_under_scrapers_is_listed() -> None:
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "scrapers").rglob("__init__.py")
    }
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed == found | set(MAPPED), "update [tool.setuptools] packages in pyproject.toml"
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == MAPPED


def test_every_script_is_a_command_with_a_main() -> None:
    commands = PYPROJECT["project"]["scripts"]
    modules = {target.split(":")[0].removeprefix("scrapers.cli.") for target in commands.values()}
    scripts = {path.stem for path in (REPO / "scripts").glob("*.py")} - {"__init__"}
    assert modules == scripts
    for module in modules:
        assert callable(importlib.import_module(f"scripts.{module}").main)


def test_runtime_requirements_match_the_pinned_versions() -> None:
    pinned = {}
    for line in (
        (REPO / "requirements.txt").read_text().split("# Tests and tooling")[0].splitlines()
    ):
        if line and not line.startswith(("#", "-")):
            requirement = Requirement(line)
            pinned[requirement.name] = next(iter(requirement.specifier)).version
    declared = {Requirement(d).name: Requirement(d) for d in PYPROJECT["project"]["dependencies"]}
    assert declared.keys() == pinned.keys()
    for name, requirement in declared.items():
        assert requirement.specifier.contains(pinned[name]), name


def test_no_script_edits_sys_path() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("scripts", "bench")
        for path in (REPO / folder).glob("*.py")
        if "sys.path" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.slow
def test_installed_wheel_runs_its_commands_outside_the_checkout(
    tmp_path: Path, db_url: str
) -> None:
    """Build the wheel (as ``pip install .`` does: pyproject's build backend, fetched by pip),
    install it alone into a folder, and run commands from elsewhere."""
    source = tmp_path / "source"  # setuptools builds in the source tree: not in the checkout
    for name in ("scrapers", "scripts", "migrations"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"),
         str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("tracklists_catalogue-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "scrapers/cli/verify_isrc_uniqueness.py" in names
    assert "scrapers/sql/002_add_isrc_unique_constraints.sql" in names
    # The web explorer's templates and static files, the vendored library and its licence.
    web = REPO / "scrapers" / "explorer" / "web"
    shipped = {
        str(path.relative_to(REPO))
        for folder in ("templates", "static")
        for path in (web / folder).rglob("*")
        if path.is_file()
    }
    assert "scrapers/explorer/web/static/vendor/cytoscape/LICENSE" in shipped
    assert shipped <= set(names), shipped - set(names)
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    # Only the installed copy is importable: not this checkout (cwd and PYTHONPATH elsewhere).
    env = {**os.environ, "PYTHONPATH": str(site), "DATABASE_URL": db_url}
    for command, expected in [
        (["tracklists-migrate", "status"], "002_add_isrc_unique_constraints"),
        (["tracklists-verify-isrc-uniqueness"], "idx_tracks_isrc_unique"),
    ]:
        done = subprocess.run(
            [sys.executable, str(site / "bin" / command[0]), *command[1:]],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert expected in done.stdout
    probe = "import scrapers.db.server.migrations as m; print(m.MIGRATIONS_DIR)"
    where = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert where.stdout.strip() == str(site / "scrapers" / "sql")
