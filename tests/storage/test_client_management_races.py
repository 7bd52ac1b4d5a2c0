"""RFC 7592 2.2-2.3 under real concurrency, per backend: updates racing a deletion never
resurrect the client; updates racing a secret rotation never restore the old secret.

Each round registers a client, then 8 threads (each with its own store instance where
the backend is shared, like separate workers) are released together: one deletes (or
rotates the secret), the others update the client.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

import pytest
from support.races import THREADS, race

from pyop.client_authentication import client_secret_matches
from pyop.exceptions import InvalidRegistrationAccessToken
from pyop.provider import Provider

from .conftest import Backend, backend_params, build_backend

#: Rounds per test (each a fresh client).
ROUNDS = 12
WEB_URI = "https://rp.example.com/cb"
RACE_BACKENDS = ["memory", "dict", "sqlite", "redis", "mongomock"]


@pytest.fixture(params=backend_params(RACE_BACKENDS))
def client_backend(request: pytest.FixtureRequest) -> Any:
    built = build_backend(request.param, request)
    try:
        yield built
    finally:
        built.close()


def _providers(backend: Backend, make_provider: Callable[..., Provider]) -> list[Provider]:
    first = backend.make()
    if backend.name in ("memory", "dict"):
        stores = [first] * THREADS
    else:
        collection = first.collection  # type: ignore[attr-defined]
        stores = [first] + [backend.make(collection=collection) for _ in range(THREADS - 1)]
    return [make_provider(client_db=store) for store in stores]


def _thread_index() -> Callable[[], int]:
    index: dict[int, int] = {}
    lock = threading.Lock()

    def get() -> int:
        ident = threading.get_ident()
        with lock:
            if ident not in index:
                index[ident] = len(index)
            return index[ident]

    return get


def _register(provider: Provider) -> dict[str, Any]:
    return dict(provider.handle_client_registration_request(
        json.dumps({"redirect_uris": [WEB_URI]})).to_dict())


def _update(provider: Provider, registered: dict[str, Any], name: str) -> str:
    client_id = registered["client_id"]
    try:
        provider.handle_client_update_request(
            client_id, json.dumps({"client_id": client_id, "redirect_uris": [WEB_URI],
                                   "client_name": name}),
            {"Authorization": "Bearer " + registered["registration_access_token"]})
    except InvalidRegistrationAccessToken:
        return "refused"
    return "updated"


def test_rfc7592_2_3_updates_racing_delete_leave_client_deleted(
        client_backend: Backend, make_provider: Callable[..., Provider]) -> None:
    providers = _providers(client_backend, make_provider)
    clients = [_register(providers[0]) for _ in range(ROUNDS)]
    index = _thread_index()

    def operation(r: int) -> str:
        mine = index()
        provider, registered = providers[mine], clients[r]
        if mine == 0:
            provider.handle_client_delete_request(
                registered["client_id"],
                {"Authorization": "Bearer " + registered["registration_access_token"]})
            return "deleted"
        return _update(provider, registered, f"update-{mine}")

    results = race(operation, rounds=ROUNDS)
    for r, registered in enumerate(clients):
        assert sorted(results[r]).count("deleted") == 1
        for provider in providers:
            assert provider.get_client(registered["client_id"]) is None, (r, results[r])
        record = providers[0].clients[registered["client_id"]]
        assert set(record) == {"client_deleted_at"}, (r, record)
        with pytest.raises(InvalidRegistrationAccessToken):
            providers[1].handle_client_read_request(
                registered["client_id"],
                {"Authorization": "Bearer " + registered["registration_access_token"]})


def test_rfc7592_2_2_updates_racing_rotation_keep_the_new_secret(
        client_backend: Backend, make_provider: Callable[..., Provider]) -> None:
    providers = _providers(client_backend, make_provider)
    clients = [_register(providers[0]) for _ in range(ROUNDS)]
    index = _thread_index()
    rotated: dict[int, str] = {}

    def operation(r: int) -> str:
        mine = index()
        provider, registered = providers[mine], clients[r]
        if mine == 0:
            rotated[r] = provider.rotate_client_secret(registered["client_id"])
            return "rotated"
        return _update(provider, registered, f"update-{mine}")

    results = race(operation, rounds=ROUNDS)
    for r, registered in enumerate(clients):
        assert sorted(results[r]) == ["rotated"] + ["updated"] * (THREADS - 1), results[r]
        client = providers[0].get_client(registered["client_id"])
        assert client is not None
        assert client_secret_matches(client, rotated[r]), r
        assert not client_secret_matches(client, registered["client_secret"]), r
