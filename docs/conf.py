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

# Mermaid diagrams are rendered by the reader's browser.

# Deprecation notices that Sphinx extensions print for their own code are not ours to fix.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"sphinx_autodoc_typehints.*")
warnings.filterwarnings("ignore", category=PendingDeprecationWarning,
                        module=r"sphinx_autodoc_typehints.*")

html_theme = "furo"
html_title = f"pyop {release}"
html_static_path: list[str] = []


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


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
