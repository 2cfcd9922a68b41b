"""The house's layers (``docs/design.md``, "Module map"): no module of ``scrapers`` imports one of a
higher layer, so that a lower layer can be read, tested and changed without the ones above it."""

from __future__ import annotations

import ast
from pathlib import Path

SCRAPERS = Path(__file__).resolve().parents[1] / "scrapers"
# Top-level modules (statuses, identity, items, metrics, settings, ...) are layer 1.
PACKAGE_LAYERS = {
    "db": 2,
    "enrichment": 3,
    "importers": 3,
    "explorer": 3,
    "crawl": 4,
    "spiders": 5,
    "pipelines": 5,
    "extensions": 5,
    "commands": 6,
}


def layer(module: str) -> int:
    """The layer of ``scrapers.<part>…``."""
    parts = module.split(".")
    if len(parts) < 2 or not (SCRAPERS / parts[1]).is_dir():
        return 1
    assert parts[1] in PACKAGE_LAYERS, (
        f"scrapers/{parts[1]}/ has no layer: add it here and to design.md"
    )
    return PACKAGE_LAYERS[parts[1]]


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("scrapers.")}


def test_no_module_imports_one_of_a_higher_layer() -> None:
    upward = []
    for path in sorted(SCRAPERS.rglob("*.py")):
        module = ".".join(path.relative_to(SCRAPERS.parent).with_suffix("").parts)
        for imported in imported_modules(path):
            # ``from scrapers.x import name``: ``scrapers.x.name`` is a module only if its file is.
            target = SCRAPERS.parent.joinpath(*imported.split("."))
            if not (target.with_suffix(".py").exists() or target.is_dir()):
                continue
            if layer(imported) > layer(module):
                upward.append(f"{module} (layer {layer(module)}) imports {imported}")
    assert upward == []


def test_a_higher_import_is_caught() -> None:
    assert (
        layer("scrapers.crawl.incremental")
        > layer("scrapers.db.write.writer")
        > layer("scrapers.items")
    )
