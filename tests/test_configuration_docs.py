"""docs/configuration.md lists exactly the settings ``scrapers/settings.py`` defines, each with
its real default: the defaults are written once, in the settings, and the documentation follows.

A setting's row is a table row whose first cell names it in backticks; a cell marked "(env)" or
"(env only)" alone names an environment variable that is no setting (``PGCONNECT_TIMEOUT``). A
default cell is checked when it holds one backticked value per name, or says "unset". A setting
two sections use (``REDIS_URL``) may have a row in each.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONFIGURATION = REPO / "docs" / "configuration.md"
NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")
VALUE = re.compile(r"`([^`]*)`")
# What a process gets from scrapers/settings.py with nothing in its environment.
DEFAULTS_SCRIPT = (
    "import json, scrapers.settings as s;"
    "print(json.dumps({n: getattr(s, n) for n in dir(s) if n.isupper()}))"
)


def project_defaults() -> dict[str, Any]:
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    output = subprocess.run(
        [sys.executable, "-c", DEFAULTS_SCRIPT],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output)


def documented_rows() -> list[tuple[list[str], str]]:
    """(setting names, default cell) of every table row that documents settings."""
    rows = []
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or not NAME.match(cells[0]):
            continue
        names_cell = cells[0].split("(")[0]
        marks = cells[0][len(names_cell) :]
        if "env" in marks and "setting" not in marks and "-s" not in marks:
            continue  # an environment variable only
        rows.append((NAME.findall(names_cell), cells[1]))
    return rows


def same(documented: str, value: Any) -> bool:
    if isinstance(value, bool):
        return documented == str(value)
    if isinstance(value, (int, float)):
        try:
            return float(documented.replace(",", "").replace("_", "")) == value
        except ValueError:
            return False
    if isinstance(value, (dict, list)):
        try:
            return json.loads(documented) == value
        except ValueError:
            return False
    return documented == str(value)


def test_every_setting_is_documented_and_every_documented_setting_exists() -> None:
    defaults = project_defaults()
    documented = [name for names, _ in documented_rows() for name in names]
    assert sorted(set(defaults) - set(documented)) == [], "settings missing from the docs"
    assert sorted(set(documented) - set(defaults)) == [], "documented settings that do not exist"


def test_documented_defaults_are_the_real_ones() -> None:
    defaults = project_defaults()
    wrong = []
    for names, cell in documented_rows():
        if cell.startswith("unset"):
            wrong += [name for name in names if defaults.get(name) not in ("", None, {}, [])]
            continue
        values = VALUE.findall(cell)
        assert len(values) == len(names), f"{names}: one backticked default per name: {cell}"
        wrong += [
            f"{name}: documented {text!r}, is {defaults.get(name)!r}"
            for name, text in zip(names, values, strict=True)
            if not same(text, defaults.get(name))
        ]
    assert wrong == []


def test_a_wrong_default_is_caught() -> None:
    assert not same("500", 400) and not same("True", False) and not same('{"a": 1}', {"a": 2})
    assert same("4194304", 4 * 1024 * 1024) and same("due", "due") and same("28", 28.0)
