"""The package declares what it imports, and carries no dead constants."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "hms"


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def _imported_top_level_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared |= _requirement_names(extra)
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for module in _imported_top_level_modules(path):
            if module in sys.stdlib_module_names or module in ("hms", "__future__"):
                continue
            provided_by = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
            if not provided_by & declared:
                undeclared.setdefault(module, []).append(path.name)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_module_constants_are_used_somewhere():
    """An upper-case module-level name that nothing reads (package, tests, benches) is dead."""
    sources = {p: p.read_text() for d in ("python", "tests", "benches") for p in (ROOT / d).rglob("*.py")}
    sources.update({p: p.read_text() for p in (ROOT / "python").rglob("*.pyi")})
    dead = []
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(sources[path])
        exported = set()
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                exported = set(ast.literal_eval(node.value))
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                if (
                    not (isinstance(target, ast.Name) and target.id.isupper() and len(target.id) > 1)
                    or target.id in exported
                ):
                    continue
                pattern = re.compile(rf"\b{target.id}\b")
                uses = sum(len(pattern.findall(text)) for text in sources.values())
                if uses < 2:  # the definition itself
                    dead.append(f"{path.name}:{target.id}")
    assert not dead, f"constants nothing uses: {dead}"
