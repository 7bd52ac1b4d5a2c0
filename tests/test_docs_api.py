"""The reference documentation covers the code.

* ``docs/api.rst`` documents every public module of pyop, and every name of each
  module's ``__all__`` has documentation (a docstring, a ``#:`` comment, or an explicit
  ``autodata`` entry with a description in ``api.rst``);
* the built HTML documentation's inventory holds every one of those names (that of
  ``docs/_build/html`` when it is newer than the sources, else the tests build the docs,
  warnings as errors, into a temporary directory);
* ``docs/configuration.rst`` lists every constructor argument of ``Provider`` and
  ``AuthorizationState`` with the default in the code, and every provider configuration
  key the code reads;
* ``docs/errors.rst`` has a row for every exception with its ``oauth_error`` and HTTP
  status.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import pytest
from sphinx.cmd.build import build_main
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.inventory import InventoryFile

import pyop
import pyop.exceptions
from pyop.authz_state import AuthorizationState
from pyop.configuration import configuration_defaults
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API_RST = DOCS / "api.rst"
CONFIGURATION_RST = DOCS / "configuration.rst"
ERRORS_RST = DOCS / "errors.rst"
INVENTORY = DOCS / "_build" / "html" / "objects.inv"

#: Public members without a docstring in the code, ``module.Class.member``. Remove an entry
#: once it has a docstring.
KNOWN_UNDOCUMENTED_MEMBERS: set[str] = set()


def public_modules() -> list[str]:
    """``pyop`` and every module under it without a leading underscore in its name."""
    names = ["pyop"]
    for info in pkgutil.walk_packages(pyop.__path__, "pyop."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def module_all(name: str) -> tuple[ModuleType, list[str]]:
    module = importlib.import_module(name)
    return module, list(getattr(module, "__all__", []))


def is_code_object(obj: Any) -> bool:
    return inspect.isclass(obj) or inspect.isroutine(obj)


def is_foreign(obj: Any) -> bool:
    """A class or function of another library, re-exported (e.g. ``oic`` messages)."""
    return is_code_object(obj) and not str(getattr(obj, "__module__", "")).startswith("pyop")


def api_text() -> str:
    return API_RST.read_text(encoding="utf-8")


def documented_modules() -> set[str]:
    return set(re.findall(r"^\.\. (?:automodule|py:module)::\s*(\S+)", api_text(), re.M))


def explicit_data_entries() -> set[str]:
    """``.. autodata:: name`` / ``.. py:data:: name`` entries of api.rst with a description."""
    entries = set()
    lines = api_text().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^\.\. (?:autodata|py:data|autoattribute)::\s*(\S+)", line)
        if not match:
            continue
        body = []
        for following in lines[index + 1:]:
            if following.strip() and not following.startswith(" "):
                break
            body.append(following.strip())
        if any(text and not text.startswith(":") for text in body):
            entries.add(match.group(1))
    return entries


def public_names() -> Iterator[tuple[str, str, Any]]:
    for module_name in public_modules():
        module, names = module_all(module_name)
        for name in names:
            yield module_name, name, getattr(module, name)


# -- api.rst ---------------------------------------------------------------------------------------

def test_every_public_module_is_in_the_api_reference() -> None:
    missing = set(public_modules()) - documented_modules()
    assert not missing, f"add these modules to docs/api.rst: {sorted(missing)}"


def test_api_reference_names_only_existing_modules() -> None:
    for name in documented_modules():
        importlib.import_module(name)


def test_every_public_name_has_documentation() -> None:
    explicit = explicit_data_entries()
    text = api_text()
    attribute_docs: dict[str, dict[tuple[str, str], list[str]]] = {}
    missing = []
    for module_name, name, obj in public_names():
        if is_foreign(obj):
            if f"``{name}``" not in text:
                missing.append(f"{module_name}.{name} (re-exported: list it in api.rst)")
        elif is_code_object(obj):
            if not (obj.__doc__ or "").strip():
                missing.append(f"{module_name}.{name} (no docstring)")
        else:
            if module_name not in attribute_docs:
                attribute_docs[module_name] = ModuleAnalyzer.for_module(
                    module_name).find_attr_docs()
            has_comment = ("", name) in attribute_docs[module_name]
            if not has_comment and f"{module_name}.{name}" not in explicit:
                missing.append(f"{module_name}.{name} (no #: comment, no autodata in api.rst)")
    assert not missing, missing


def test_public_members_have_docstrings() -> None:
    """Public methods and properties of the public classes, own or inherited docstring."""
    seen: set[type] = set()
    missing = set()
    for _, _, obj in public_names():
        if not inspect.isclass(obj) or is_foreign(obj) or obj in seen:
            continue
        seen.add(obj)
        for member_name, member in vars(obj).items():
            if member_name.startswith("_"):
                continue
            if isinstance(member, property):
                doc = member.__doc__
            elif inspect.isfunction(member) or isinstance(member, (staticmethod, classmethod)):
                doc = inspect.getdoc(getattr(obj, member_name))
            else:
                continue
            if not (doc or "").strip():
                missing.add(f"{obj.__module__}.{obj.__qualname__}.{member_name}")
    assert missing == KNOWN_UNDOCUMENTED_MEMBERS, (
        f"undocumented: {sorted(missing - KNOWN_UNDOCUMENTED_MEMBERS)}; "
        f"documented now (remove from KNOWN_UNDOCUMENTED_MEMBERS): "
        f"{sorted(KNOWN_UNDOCUMENTED_MEMBERS - missing)}")


# -- the built documentation -----------------------------------------------------------------------

def _fresh_build() -> Optional[Path]:
    """``docs/_build/html`` when it is newer than every source, else None."""
    if not INVENTORY.exists():
        return None
    sources = [*DOCS.glob("*.rst"), DOCS / "conf.py", *(DOCS / "_static").iterdir(),
               *(ROOT / "pyop").rglob("*.py")]
    newest = max(path.stat().st_mtime for path in sources)
    return INVENTORY.parent if INVENTORY.stat().st_mtime >= newest else None


@pytest.fixture(scope="module")
def html_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of the built HTML docs.

    ``docs/_build/html`` when it is fresh (CI builds it with ``sphinx-build -W``), else
    the HTML docs built into a temporary directory, warnings as errors.
    """
    path = _fresh_build()
    if path is None:
        out = tmp_path_factory.mktemp("docs-html")
        status = build_main(["-W", "-q", "-b", "html", "-d", str(out / ".doctrees"),
                             str(DOCS), str(out)])
        assert status == 0, "sphinx-build -W -b html docs ... failed (see the output above)"
        path = out
    return path


@pytest.fixture(scope="module")
def inventory(html_docs: Path) -> set[str]:
    """The Python objects of the built docs."""
    with (html_docs / "objects.inv").open("rb") as stream:
        data = InventoryFile.load(stream, "", posixpath.join)
    return {name for kind, objects in data.items() if kind.startswith("py:") for name in objects}


#: Where a page loads code or style from: script ``src``, link ``href`` (stylesheets,
#: preloads, icons), ES module ``import`` / ``import()`` specifiers, CSS ``@import``/``url()``.
_RESOURCE_REFERENCES = [
    re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE),
    re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?([^\"'\s>]+)", re.IGNORECASE),
    re.compile(r"\bimport\b[^;\"'()]*?\bfrom\s*[\"']([^\"']+)"),
    re.compile(r"\bimport\s*\(\s*[\"']([^\"']+)"),
    re.compile(r"@import\s+(?:url\()?[\"']?([^\"')\s;]+)"),
    re.compile(r"\burl\(\s*[\"']?([^\"')\s]+)"),
]


def remote_resources(text: str) -> set[str]:
    """The scripts, styles, fonts... that ``text`` (HTML, JS or CSS) loads from another host."""
    return {ref for pattern in _RESOURCE_REFERENCES for ref in pattern.findall(text)
            if re.match(r"(?i)(?:[a-z][a-z0-9+.-]*:)?//", ref)}


def test_remote_resources_are_detected() -> None:
    page = """<link rel="stylesheet" href="https://cdn.example/x.css">
    <link rel="canonical" href="_static/local.css"><script src=//cdn.example/a.js></script>
    <script type="module">import mermaid from "https://cdn.jsdelivr.net/npm/mermaid.mjs";
    const m = await import('http://cdn.example/b.mjs');</script>
    <style>@import url("https://fonts.example/f.css"); p {background: url(img.png)}</style>
    <a href="https://github.com/x">a link is not a resource</a>"""
    assert remote_resources(page) == {
        "https://cdn.example/x.css", "//cdn.example/a.js",
        "https://cdn.jsdelivr.net/npm/mermaid.mjs", "http://cdn.example/b.mjs",
        "https://fonts.example/f.css"}


def test_built_docs_load_nothing_from_the_network(html_docs: Path) -> None:
    """Read offline: every script and style of the built pages is shipped with them."""
    remote = {}
    for path in [*html_docs.rglob("*.html"), *(html_docs / "_static").rglob("*.css"),
                 *(html_docs / "_static").rglob("*.mjs")]:
        found = remote_resources(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            remote[str(path.relative_to(html_docs))] = sorted(found)
    assert not remote, remote


def test_built_docs_render_mermaid_with_the_shipped_copy(html_docs: Path) -> None:
    page = (html_docs / "concepts.html").read_text(encoding="utf-8")
    assert 'class="mermaid"' in page
    assert re.search(r'<script src="_static/mermaid\.min\.js(\?[^"]*)?"', page)
    assert 'import mermaid from "./_static/mermaid-global.mjs"' in page
    shipped = (html_docs / "_static" / "mermaid.min.js").read_text(encoding="utf-8")
    assert 'globalThis["mermaid"]' in shipped  # the classic bundle defines the global
    assert "export default globalThis.mermaid" in (
        html_docs / "_static" / "mermaid-global.mjs").read_text(encoding="utf-8")
    # pages without a diagram do not load it
    assert "mermaid.min.js" not in (html_docs / "errors.html").read_text(encoding="utf-8")


def test_built_docs_have_every_module(inventory: set[str]) -> None:
    missing = [name for name in public_modules() if name not in inventory]
    assert not missing, missing


def test_built_docs_have_every_public_name(inventory: set[str]) -> None:
    """Each name is documented where it is defined or in a module re-exporting it."""
    exporters: dict[str, list[tuple[str, Any]]] = {}
    for module_name, name, obj in public_names():
        exporters.setdefault(name, []).append((module_name, obj))
    missing = []
    for module_name, name, obj in public_names():
        if is_foreign(obj):
            continue
        places = {f"{module_name}.{name}"}
        if is_code_object(obj):
            places.add(f"{obj.__module__}.{obj.__qualname__}")
        places.update(f"{other}.{name}" for other, other_obj in exporters[name]
                      if other_obj is obj)
        if not places & inventory:
            missing.append(f"{module_name}.{name}")
    assert not missing, missing


# -- configuration.rst -----------------------------------------------------------------------------

def section(text: str, title: str) -> str:
    """The text of a section (title underlined with ``-``) up to the next section."""
    match = re.search(rf"^{re.escape(title)}\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)", text, re.M | re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


def default_text(value: Any) -> str:
    if callable(value):
        return f"{value.__module__}.{value.__name__}"
    return repr(value)


def headings(text: str) -> dict[str, str]:
    """``name -> heading line`` of the definition list (terms start in column 0)."""
    result = {}
    for line in text.splitlines():
        if line.startswith("``"):
            for name in re.findall(r"``(\w+)``", line.split("(default")[0]):
                result[name] = line
    return result


@pytest.mark.parametrize("cls, title", [(Provider, "Provider arguments"),
                                        (AuthorizationState, "AuthorizationState arguments")])
def test_configuration_reference_lists_constructor_arguments(cls: type, title: str) -> None:
    text = section(CONFIGURATION_RST.read_text(encoding="utf-8"), title)
    terms = headings(text)
    signature_match = re.search(rf"``{cls.__name__}\((.*?)\)``", text, re.S)
    assert signature_match, f"{title}: no ``{cls.__name__}(...)`` signature"
    signature_text = " ".join(signature_match.group(1).split())
    problems = []
    for parameter in list(inspect.signature(cls).parameters.values()):
        name = parameter.name
        if name not in terms:
            problems.append(f"{name}: not described")
            continue
        if name not in signature_text:
            problems.append(f"{name}: not in the signature line")
        if parameter.default is inspect.Parameter.empty:
            continue
        expected = default_text(parameter.default)
        if f"{name}={expected}" not in signature_text:
            problems.append(f"{name}: signature line should say {name}={expected}")
        stated = re.search(r"\(default ``([^`]*)``", terms[name])
        if stated is None:
            if parameter.default is not None:
                problems.append(f"{name}: no default stated, the code says {expected}")
        elif stated.group(1) != expected:
            problems.append(f"{name}: documented default {stated.group(1)}, code {expected}")
    assert not problems, problems


def configuration_keys_read_by_the_code() -> set[str]:
    keys: set[str] = set()
    for path in (ROOT / "pyop").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        keys.update(re.findall(r"configuration_information(?:\.get\(|\[)\s*\"(\w+)\"", source))
    provider_source = (ROOT / "pyop" / "configuration.py").read_text(encoding="utf-8")
    keys.update(re.findall(r"\bconfig(?:\.get\(|\[)\s*\"(\w+)\"", provider_source))
    keys.update(re.findall(r"\bname = \"(\w+_supported)\"", provider_source))
    defaults = inspect.getsource(configuration_defaults)
    block = re.search(r"return \{(.*?)\n\s*\}", defaults, re.S)
    assert block, "the defaults of configuration_defaults were not found"
    keys.update(re.findall(r"^\s*\"(\w+)\":", block.group(1), re.M))
    return keys


def test_configuration_reference_lists_configuration_keys() -> None:
    text = section(CONFIGURATION_RST.read_text(encoding="utf-8"), "Provider configuration")
    keys = configuration_keys_read_by_the_code()
    assert {"issuer", "response_types_supported", "scopes_supported"} <= keys
    missing = keys - set(headings(text))
    assert not missing, f"configuration keys read by the code, not in the doc: {sorted(missing)}"


def test_configuration_reference_states_the_defaults(jwkest_signing_key: Any) -> None:
    """The defaults the doc states are what a provider built from a minimal dict publishes."""
    minimal = {"issuer": "https://op.example.com",
               "authorization_endpoint": "https://op.example.com/authorization",
               "token_endpoint": "https://op.example.com/token"}
    provider = Provider(jwkest_signing_key, minimal,
                        AuthorizationState(HashBasedSubjectIdentifierFactory("salt")), {},
                        Userinfo({}))
    published = provider.configuration_information.to_dict()
    text = section(CONFIGURATION_RST.read_text(encoding="utf-8"), "Provider configuration")
    problems = []
    checked = 0
    for key, heading in headings(text).items():
        if key in minimal:
            continue
        if "not published by default" in heading:
            if key in published:
                problems.append(f"{key}: published by default as {published[key]!r}")
            continue
        stated = re.search(r"\(default ``([^`]*)``", heading)
        if stated is None:
            continue
        try:
            value = ast.literal_eval(stated.group(1))
        except (ValueError, SyntaxError):
            continue  # an expression such as issuer + "/jwks"
        checked += 1
        if published.get(key) != value:
            problems.append(f"{key}: documented default {value!r}, "
                            f"published {published.get(key)!r}")
    assert published["jwks_uri"] == "https://op.example.com/jwks"
    assert published["id_token_signing_alg_values_supported"] == [jwkest_signing_key.alg]
    assert checked >= 10
    assert not problems, problems


# -- errors.rst ------------------------------------------------------------------------------------

_ROW = re.compile(r"^   \* - :class:`~pyop\.exceptions\.(\w+)`\n     - (.*?)\n     - (.*?)\n"
                  r"     - (.*?)\n", re.M)


def test_errors_reference_matches_the_exceptions() -> None:
    rows = {match.group(1): match.groups()[1:]
            for match in _ROW.finditer(ERRORS_RST.read_text(encoding="utf-8"))}
    problems = []
    for name in pyop.exceptions.__all__:
        cls = getattr(pyop.exceptions, name)
        if name not in rows:
            problems.append(f"{name}: no row in the table")
            continue
        error_cell, status_cell, redirect_cell = rows[name]
        code = getattr(cls, "default_oauth_error", None) or getattr(cls, "oauth_error", None)
        status = getattr(cls, "http_status", None)
        if code is None:
            if error_cell != "—" or status_cell != "—":
                problems.append(f"{name}: not an OAuth error, the row should say —")
            continue
        codes = re.findall(r"``(\w+)``", error_cell)
        if not codes or codes[0] != code:
            problems.append(f"{name}: oauth_error {codes[:1]} in the doc, {code!r} in the code")
        if status_cell != str(status):
            problems.append(f"{name}: HTTP {status_cell} in the doc, {status} in the code")
        redirectable = cls.redirectable
        if isinstance(redirectable, property):
            redirectable = cls("error", {}, redirect_uri_verified=True).redirectable
        if redirectable != redirect_cell.startswith("once"):
            problems.append(f"{name}: redirect column {redirect_cell!r}")
    assert not problems, problems


def test_index_diagram_fits_the_page() -> None:
    """The overview diagram of the index page is at most 80 columns wide."""
    text = (DOCS / "index.rst").read_text(encoding="utf-8")
    block = text.split(".. code-block:: text", 1)[1].split("\n\n")[1]
    assert "Provider.parse_*" in block
    widest = max(block.splitlines(), key=len)
    assert len(widest) <= 80, widest
