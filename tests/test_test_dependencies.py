"""Every test module imports with only the ``test`` extra installed.

The README's test command is ``pip install -e ".[test]" && pytest``: whatever a test
module, or the project code it imports (``pyop``, ``example``, ``benchmarks``, the test
support modules), imports must come from the standard library, from this checkout, or
from a distribution that the library's requirements or the ``test`` extra bring in
(directly or through their own requirements). An import guarded by
``try: ... except ImportError`` or by ``pytest.importorskip`` is optional and not counted.

CI also runs the README's command in a fresh virtual environment; this test names the
missing distribution on any machine, even one where it happens to be installed.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
#: top-level names importable from this checkout (pytest puts the root on sys.path)
FIRST_PARTY = {"pyop", "example", "benchmarks", "tests", "docs"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _is_import_error_handler(handler: ast.ExceptHandler) -> bool:
    names: list[ast.expr] = []
    if isinstance(handler.type, ast.Tuple):
        names = list(handler.type.elts)
    elif handler.type is not None:
        names = [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
               for n in names)


def imports_of(path: Path, *, in_functions: bool = True) -> Iterator[tuple[str, int]]:
    """Imports (absolute module name, line) of a source file, optional ones left out.

    Relative imports are resolved against the file's package. With
    ``in_functions=False`` only what importing the module runs is seen (imports inside
    function bodies run only when the function is called).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_is_import_error_handler(h) for h in node.handlers):
            for inner in node.body:
                skipped.update(id(n) for n in ast.walk(inner))
        if not in_functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skipped.update(id(n) for n in ast.walk(node))
    package = _package_of(path)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield base, node.lineno
            for alias in node.names:  # ``from package import submodule``
                yield f"{base}.{alias.name}", node.lineno


def _package_of(path: Path) -> list[str]:
    """The dotted package of a file of this checkout, as a list of names."""
    try:
        relative = path.resolve().parent.relative_to(ROOT)
    except ValueError:
        return []
    return list(relative.parts)


def local_source(module: str, importer: Path) -> list[Path]:
    """Source files of a first-party or test-local module (empty for third-party ones)."""
    parts = module.split(".")
    candidates = [ROOT.joinpath(*parts), importer.parent.joinpath(*parts), TESTS.joinpath(*parts)]
    for base in candidates:
        if base.with_suffix(".py").is_file():
            return [base.with_suffix(".py")]
        if (base / "__init__.py").is_file():
            return [base / "__init__.py"]
    return []


def _is_local(module: str, importer: Path) -> bool:
    """Whether a module is this checkout's own (an existing file, or a name in one of its
    packages that is not a module, such as ``from pyop.provider import Provider``)."""
    top = module.split(".")[0]
    return bool(local_source(top, importer)) or top in FIRST_PARTY


@cache
def allowed_distributions() -> frozenset[str]:
    """The library's requirements and the ``test`` extra's, with theirs, transitively."""
    pending: list[tuple[str, frozenset[str]]] = [("pyop", frozenset({"test"}))]
    seen: set[str] = set()
    while pending:
        name, extras = pending.pop()
        key = _normalize(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            seen.add(key)
            continue
        seen.add(key)
        for text in requires:
            requirement = Requirement(text)
            marker: Marker | None = requirement.marker
            if marker is not None and not any(
                    marker.evaluate({"extra": extra}) for extra in (extras or {""})):
                continue
            dep = _normalize(requirement.name)
            if dep in seen and not requirement.extras:
                continue
            pending.append((requirement.name, frozenset(requirement.extras)))
    return frozenset(seen)


@cache
def module_distributions() -> dict[str, list[str]]:
    return {module: [_normalize(d) for d in dists]
            for module, dists in metadata.packages_distributions().items()}


def _test_sources() -> list[Path]:
    """The modules pytest imports: test modules and conftest files (scripts that tests run
    in other interpreters, such as the pyop 3 harness, are reached only if imported)."""
    return sorted(p for p in TESTS.rglob("*.py")
                  if p.name == "conftest.py" or (p.name.startswith("test_")))


def third_party_imports() -> dict[str, list[str]]:
    """Third-party top-level modules imported by the tests and the code they import."""
    found: dict[str, list[str]] = {}
    queue = [(path, True) for path in _test_sources()]
    visited: set[Path] = set()
    while queue:
        path, in_functions = queue.pop()
        if path in visited:
            continue
        visited.add(path)
        for module, line in imports_of(path, in_functions=in_functions):
            top = module.split(".")[0]
            if not top or top in sys.stdlib_module_names or top == "__future__":
                continue
            if _is_local(module, path):
                for source in local_source(module, path):
                    is_test = TESTS in source.parents
                    queue.append((source, is_test))
                # the packages on the way (``a/__init__.py`` for ``a.b``) run too
                names = module.split(".")
                for i in range(1, len(names)):
                    queue.extend((p, False) for p in local_source(".".join(names[:i]), path))
                continue
            found.setdefault(top, []).append(f"{path.relative_to(ROOT)}:{line}")
    return found


def test_the_walk_sees_the_project_and_its_imports() -> None:
    """The check is not vacuous: it finds the test suite's known third-party imports."""
    found = third_party_imports()
    for module in ("pytest", "oic", "jwkest", "hypothesis", "sphinx", "mongomock"):
        assert module in found, module


def test_every_import_comes_with_the_test_extra() -> None:
    allowed = allowed_distributions()
    assert {"pytest", "oic", "sphinx"} <= allowed
    by_module = module_distributions()
    missing: dict[str, list[str]] = {}
    for module, places in sorted(third_party_imports().items()):
        distributions = by_module.get(module)
        if distributions is None:
            missing[module] = places  # not installed at all here
        elif not set(distributions) & allowed:
            missing[f"{module} ({', '.join(distributions)})"] = places
    assert not missing, ("imported by the tests but not brought by pip install -e '.[test]': "
                         + "; ".join(f"{m} at {', '.join(p[:3])}" for m, p in missing.items()))


@pytest.mark.parametrize("snippet, optional", [
    ("import foo\n", False),
    ("try:\n    import foo\nexcept ImportError:\n    foo = None\n", True),
    ("def f():\n    from foo import bar\n", False),
])
def test_optional_imports_are_recognized(tmp_path: Path, snippet: str, optional: bool) -> None:
    path = tmp_path / "m.py"
    path.write_text(snippet)
    assert (not list(imports_of(path))) is optional
