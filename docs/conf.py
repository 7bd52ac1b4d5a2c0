"""Sphinx configuration for the pyop documentation."""

import inspect
import os
import sys
import warnings

# Document the package from this checkout, also when it is not installed.
sys.path.insert(0, os.path.abspath(".."))

project = "pyop"
author = "The pyop developers"
copyright = "2026, The pyop developers"
release = "4.0.0.dev0"
version = "4.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
    "sphinxcontrib.mermaid",
    "myst_parser",
]

source_suffix = {
    ".rst": "restructuredtext",
    ".md": "markdown",
}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# No network at build time: intersphinx is not enabled, and unresolved
# references to other projects' objects are not errors.
nitpicky = False

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
always_document_param_types = False
typehints_fully_qualified = False

napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Annotations that exist only for type checkers (imports under TYPE_CHECKING)
# cannot be resolved at documentation time; that is expected.
suppress_warnings = [
    "sphinx_autodoc_typehints.forward_reference",
    "sphinx_autodoc_typehints.guarded_import",
]

myst_heading_anchors = 3

# Mermaid diagrams are rendered by the reader's browser, with the copy of Mermaid shipped
# in _static (see _static/README): the documentation needs no network, neither to build
# nor to read. sphinxcontrib-mermaid imports Mermaid as an ES module; the shipped
# mermaid.min.js is a classic script, loaded on the pages with a diagram (see setup()),
# and mermaid-global.mjs hands the global it defines to the extension's module.
MERMAID_VERSION = "11.12.1"
mermaid_version = MERMAID_VERSION
mermaid_use_local = "mermaid-global.mjs"

# Deprecation notices that Sphinx extensions print for their own code are not ours to fix.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"sphinx_autodoc_typehints.*")
warnings.filterwarnings("ignore", category=PendingDeprecationWarning,
                        module=r"sphinx_autodoc_typehints.*")

html_theme = "furo"
html_title = f"pyop {release}"
html_static_path = ["_static"]


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out names a pyop module merely re-exports (e.g. ``oic`` message classes).

    They are documented by their own project; documenting them here would also pull in
    docstrings that are not valid reStructuredText. Only classes and functions are
    concerned: a constant's ``__module__`` is its type's (``re`` for a compiled pattern,
    ``typing`` for an alias), not where it is defined.
    """
    if what == "module" and (inspect.isclass(obj) or inspect.isroutine(obj)):
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and module.split(".")[0] != "pyop":
            return True
    return None


def _add_mermaid_script(app, pagename, templatename, context, doctree):
    """Load the shipped ``mermaid.min.js`` on the pages that have a diagram."""
    from sphinxcontrib.mermaid import mermaid

    if doctree is not None and doctree.next_node(mermaid) is not None:
        # a classic script runs while the page is parsed, before any module script
        app.add_js_file("mermaid.min.js", priority=400)


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
    app.connect("html-page-context", _add_mermaid_script)
