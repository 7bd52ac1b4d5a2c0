"""The package's import structure: no cycle, imports point down, no private reach-ins.

Every module of ``pyop`` has a place in :data:`LAYERS` (lowest first). A module may
import modules of lower layers, or of its own layer when no cycle results; never of a
higher one. Imports inside functions and under ``if TYPE_CHECKING`` count too. A module
may not use another module's private (``_``-prefixed) names.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pyop"

#: The layering order, lowest first.
LAYERS: list[list[str]] = [
    # helpers that use nothing else of pyop
    ["pyop._cache", "pyop.response_mode", "pyop.subject_identifier", "pyop.userinfo",
     "pyop.provider_view"],
    ["pyop.exceptions"],
    ["pyop.util", "pyop.misuse_checks"],
    # requests to URLs clients registered
    ["pyop.outbound"],
    ["pyop.aio.outbound"],
    ["pyop._jws_algorithms"],
    ["pyop.crypto"],
    ["pyop.jwt_checks"],
    ["pyop.message", "pyop.access_token", "pyop.id_token", "pyop.keys",
     "pyop.request_object"],
    # storage: the contract, then the backends, then the package face
    ["pyop.storage.schemes"],
    ["pyop.storage.base"],
    ["pyop.storage._sql_statements"],
    ["pyop.storage._sql_engine"],
    ["pyop.storage.memory", "pyop.storage.mongo", "pyop.storage.redis", "pyop.storage.sql"],
    ["pyop.storage.stateless"],
    ["pyop.storage"],
    # protocol building blocks
    ["pyop.client_assertion", "pyop.request_validator", "pyop.client_certificate",
     "pyop.dpop"],
    ["pyop.client_authentication"],
    # the parts of AuthorizationState, each built on the one before
    ["pyop.authz_state._records"],
    ["pyop.authz_state._pushed_requests"],
    ["pyop.authz_state._subjects"],
    ["pyop.authz_state._sessions"],
    ["pyop.authz_state._access_tokens"],
    ["pyop.authz_state._refresh_tokens"],
    ["pyop.authz_state._codes"],
    ["pyop.authz_state._pyop3_api"],
    ["pyop.client_management", "pyop.registration", "pyop.authz_state"],
    ["pyop.migrate"],
    # the provider's shared services
    ["pyop.configuration", "pyop.key_set", "pyop.client_keys", "pyop.client_registry"],
    ["pyop.context"],
    ["pyop.profiles"],
    ["pyop.jarm"],
    ["pyop.claims_policy"],
    ["pyop.logout_notifications"],
    ["pyop.aio.logout"],
    # grants, then endpoints, then the facade
    ["pyop.grants.base"],
    ["pyop.grants.authorization_code", "pyop.grants.refresh_token",
     "pyop.grants.client_credentials"],
    ["pyop.grants"],
    ["pyop.endpoints.authorization", "pyop.endpoints.token", "pyop.endpoints.token_management",
     "pyop.endpoints.userinfo", "pyop.endpoints.registration", "pyop.endpoints.end_session"],
    ["pyop.endpoints.pushed_authorization"],
    ["pyop.endpoints"],
    ["pyop.provider"],
    ["pyop"],
    # the asyncio front end (pyop.aio): the greenlet bridge, driver clients per event loop,
    # async storage (the scheme table, the contract, the backends, the package face), then
    # the coroutine face of Provider
    ["pyop.aio._bridge"],
    ["pyop.aio._loops"],
    ["pyop.aio.storage.schemes"],
    ["pyop.aio.storage.base"],
    ["pyop.aio.storage.memory", "pyop.aio.storage.mongo", "pyop.aio.storage.redis",
     "pyop.aio.storage.sql", "pyop.aio.storage.stateless"],
    ["pyop.aio.storage"],
    ["pyop.aio.userinfo", "pyop.aio._mirrored"],
    ["pyop.aio.authz_state"],
    ["pyop.aio.provider"],
    ["pyop.aio"],
    ["pyop.aio._codegen"],
    # the operator command, an application of the library: nothing below imports it
    ["pyop.cli.output"],
    ["pyop.cli.check", "pyop.cli.keys"],
    ["pyop.cli.clients"],
    ["pyop.cli"],
    ["pyop.__main__"],
]

#: Upward imports allowed (none).
KNOWN_UPWARD: set[tuple[str, str]] = set()

#: Private names used across modules (none): (importing module, imported module, name).
KNOWN_PRIVATE: set[tuple[str, str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def resolve(importer: str, level: int, target: Optional[str]) -> str:
    """The absolute module name of a (relative) import."""
    if level == 0:
        return target or ""
    base = importer.split(".") if importer in PACKAGES else importer.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(name: str) -> list[tuple[str, list[str]]]:
    """``(module, names taken from it)`` for every pyop import of a module."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names
                         if alias.name.split(".")[0] == "pyop")
        elif isinstance(node, ast.ImportFrom):
            base = resolve(name, node.level, node.module)
            if base.split(".")[0] != "pyop":
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in MODULES:
                    found.append((submodule, []))
                else:
                    found.append((base, [alias.name]))
    return found


def graph() -> dict[str, set[str]]:
    return {name: {target for target, _ in imports(name) if target != name}
            for name in MODULES}


def layer_of() -> dict[str, int]:
    return {module: index for index, layer in enumerate(LAYERS) for module in layer}


def test_every_module_has_a_layer() -> None:
    layers = layer_of()
    assert sorted(set(MODULES) - set(layers)) == []
    assert sorted(set(layers) - set(MODULES)) == []


def test_imports_point_down() -> None:
    layers = layer_of()
    upward = {(importer, target) for importer, targets in graph().items()
              for target in targets if layers[target] > layers[importer]}
    assert upward == KNOWN_UPWARD


def test_no_import_cycle() -> None:
    edges = {importer: {target for target in targets
                        if (importer, target) not in KNOWN_UPWARD}
             for importer, targets in graph().items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join(
                    path[path.index(target):] + [target]))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def private_uses(name: str) -> set[tuple[str, str, str]]:
    """``(module, other module, private name)`` for each private name of another pyop
    module that ``name`` imports or reads as ``module._name``."""
    uses = set()
    aliases: dict[str, str] = {}
    for target, names in imports(name):
        for imported in names:
            if imported.startswith("_") and target != name:
                uses.add((name, target, imported))
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = resolve(name, node.level, node.module)
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            uses.add((name, aliases[node.value.id], node.attr))
    return uses


def test_no_private_member_used_across_modules() -> None:
    found = set().union(*(private_uses(name) for name in MODULES))
    assert found == KNOWN_PRIVATE


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    assert resolve("pyop.endpoints.token", 2, "context") == "pyop.context"
    assert resolve("pyop.storage", 1, "base") == "pyop.storage.base"
    layers = layer_of()
    assert layers["pyop.provider"] > layers["pyop.endpoints.token"] > layers["pyop.context"]
    assert ("pyop.context", []) not in imports("pyop.provider_view")
    # the library never reaches up into the command built on it
    assert layers["pyop.cli.keys"] > layers["pyop.keys"]
    assert not any(target.startswith("pyop.cli") for target in graph()["pyop.keys"])


def backslash_continuations(path: Path) -> list[int]:
    """Lines of a module that end with a backslash continuation (outside strings)."""
    import io
    import tokenize

    text = path.read_text(encoding="utf-8")
    in_string: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.STRING and token.start[0] < token.end[0]:
            in_string.update(range(token.start[0], token.end[0]))
    return [number for number, line in enumerate(text.splitlines(), 1)
            if line.rstrip().endswith("\\") and number not in in_string
            and not line.lstrip().startswith("#")]


def test_no_backslash_continuations() -> None:
    found = {name: lines for name, path in MODULES.items()
             if (lines := backslash_continuations(path))}
    assert found == {}, "use parentheses instead"
