"""The differences from pyop 3.5.0's discovery document that are allowed, each with its
reason (docs/migrating.rst, "Discovery, keys and registration differences").

Used by ``tests/compat/test_differential.py`` (pyop 3 run live) and
``tests/test_upgrade_config.py`` (golden data from pyop 3 and SATOSA), so that both
accept the same differences and nothing else: every other member, its presence and its
value, must be pyop 3's.
"""

from __future__ import annotations

from typing import Any

#: Members whose pyop 3 value is replaced: name -> (the value required instead, why).
DISCOVERY_CORRECTIONS: dict[str, tuple[Any, str]] = {
    "request_uri_parameter_supported": (
        False, "pyop 3 published true (oic's default) but never fetched a request_uri; "
               "OIDC Discovery 3: true promises support of request_uri (OIDC Core 6.2)"),
}
#: Members whose order carries no meaning: pyop 3 built scopes_supported from a set, so
#: its order changed between processes; this library keeps the configured order.
UNORDERED = {"scopes_supported"}


def comparable(pyop3_document: dict[str, Any], ours: dict[str, Any]
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both documents with the allowed differences taken out, after checking that each
    correction has the required value (also when pyop 3 had the member absent)."""
    expected, actual = dict(pyop3_document), dict(ours)
    for name, (value, reason) in DISCOVERY_CORRECTIONS.items():
        if name in expected or name in actual:
            assert actual.get(name) == value, f"{name} must be {value!r}: {reason}"
            expected.pop(name, None)
            actual.pop(name, None)
    for name in UNORDERED:
        for document in (expected, actual):
            if isinstance(document.get(name), list):
                document[name] = sorted(document[name])
    return expected, actual
