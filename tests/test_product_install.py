"""`mypy --strict` passes on a product-only install (``pip install -c constraints.txt -e .``,
no extras), checked cheaply from the development environment.

The dev venv has the extras installed, so running mypy there cannot show that a product module
needs one. Instead this reads every import of the product packages with ``ast`` (all of them:
load-time, lazy and ``TYPE_CHECKING`` ones, since mypy follows each) and asks the installed
metadata which distribution provides each third-party module: it must be in the closure of
``[project] dependencies``, and a stub-only distribution for it (``types-*``, ``*-stubs``) must
be too, or a product-only mypy would not find the types the dev mypy found. With that, the
default ``mypy`` (``[tool.mypy] packages``, the product packages: loadtest is checked by a
second run in tests/run.sh, it needs the ``loadtest`` extra) sees the same modules on both
installs. Measured once by hand, 2026-12-02: a fresh venv with ``pip install -c
constraints.txt -e . mypy`` and ``mypy``: no issues in 115 source files."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping

from tests.test_import_graph import PACKAGES, ROOT

PRODUCT = tuple(p for p in PACKAGES if p != "loadtest")


def all_imports(source: str) -> set[str]:
    """The top-level names of every absolute import anywhere in ``source``."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _name(requirement: str) -> str:
    return re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def dependency_closure(roots: Iterable[str]) -> set[str]:
    """``roots`` and every distribution they require (extras' requirements left out)."""
    seen: set[str] = set()
    todo = [_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in requires if "extra ==" not in r.replace("'", '"')
                    and "extra==" not in r)
    return seen


def missing_on_product_install(imports: Mapping[str, set[str]], closure: set[str],
                               providers: Mapping[str, list[str]],
                               project: Iterable[str]) -> list[str]:
    """``module imports X`` lines for each third-party ``X`` no base dependency provides, or
    whose stubs come from a distribution outside the base dependencies."""
    local = set(project) | set(sys.stdlib_module_names) | {"__future__"}
    out = []
    for module, names in sorted(imports.items()):
        for name in sorted(names - local):
            real = {_name(d) for d in providers.get(name, [])}
            stubs = {_name(d) for d in providers.get(f"{name}-stubs", [])}
            if not real & closure:
                out.append(f"{module} imports {name} (from {sorted(real) or 'nothing installed'})")
            elif stubs - closure:
                out.append(f"{module} imports {name} (stubs from {sorted(stubs - closure)})")
    return out


def test_product_modules_import_only_base_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    imports = {str(path.relative_to(ROOT)): all_imports(path.read_text())
               for package in PRODUCT for path in sorted((ROOT / package).rglob("*.py"))}
    assert missing_on_product_install(imports, dependency_closure(project["dependencies"]),
                                      md.packages_distributions(), PACKAGES) == []


def test_mypy_default_run_checks_the_product_packages_only() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert tuple(config["packages"]) == PRODUCT


# The check itself, on made-up data: an extra, an extra's stubs, a base dependency.

def test_missing_on_product_install_names_extras_and_their_stubs() -> None:
    imports = {"a.py": {"trio", "locust", "os", "bus"}, "b.py": {"yaml"}, "c.py": {"orjson"}}
    providers = {"trio": ["trio"], "locust": ["locust"], "yaml": ["PyYAML"],
                 "yaml-stubs": ["types-PyYAML"], "orjson": ["orjson"]}
    closure = {"trio", "pyyaml", "orjson"}
    assert missing_on_product_install(imports, closure, providers, ["bus"]) == [
        "a.py imports locust (from ['locust'])",
        "b.py imports yaml (stubs from ['types-pyyaml'])"]


def test_dependency_closure_follows_requirements() -> None:
    assert {"quart-trio", "quart", "trio", "werkzeug"} <= dependency_closure(["quart-trio"])
