"""A provider worker process for tests/storage/test_multiprocess.py (not a test module).

Reads one JSON command per line on stdin, answers one JSON line on stdout:

* ``{"op": "setup", "uri": ..., "db_name": ..., "pem": path}``: a new Provider whose four
  stores are ``StorageBase.from_uri(uri, db_name=..., collection=...)``;
* ``{"op": "authorize"}`` -> ``{"code": ...}``;
* ``{"op": "token", "code": ...}``, ``{"op": "refresh", "refresh_token": ...}`` ->
  the token response, or ``{"error": <oauth error code>}``;
* ``{"op": "userinfo", "access_token": ...}`` -> the claims or ``{"error": ...}``;
* ``{"op": "exit"}``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography.hazmat.primitives.serialization import load_pem_private_key  # noqa: E402
from provider_support import (  # noqa: E402
    Stores,
    authorize,
    exchange,
    make_provider,
    refresh,
    stores_from_uri,
    userinfo,
)

from pyop.exceptions import OAuthError  # noqa: E402
from pyop.provider import Provider  # noqa: E402


def main() -> None:
    provider: Provider | None = None
    stores: Stores | None = None
    for line in sys.stdin:
        command: dict[str, Any] = json.loads(line)
        op = command["op"]
        reply: dict[str, Any]
        try:
            if op == "exit":
                break
            if op == "setup":
                if stores is not None:
                    stores.close()
                with open(command["pem"], "rb") as pem:
                    key = load_pem_private_key(pem.read(), password=None)
                stores = stores_from_uri(command["uri"], command["db_name"])
                provider = make_provider(stores, key, refresh_token_lifetime=3600,
                                         refresh_token_threshold=7200)
                reply = {"pid": os.getpid()}
            elif provider is None:
                reply = {"fatal": "no setup"}
            elif op == "authorize":
                reply = {"code": authorize(provider)}
            elif op == "token":
                reply = exchange(provider, command["code"]).to_dict()
            elif op == "refresh":
                reply = refresh(provider, command["refresh_token"]).to_dict()
            elif op == "userinfo":
                reply = userinfo(provider, command["access_token"]).to_dict()
            else:
                reply = {"fatal": f"unknown op {op!r}"}
        except OAuthError as error:
            reply = {"error": error.oauth_error}
        except Exception as error:  # reported to the test, which fails on it
            reply = {"fatal": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    if stores is not None:
        stores.close()


if __name__ == "__main__":
    main()
