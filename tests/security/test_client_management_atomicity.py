"""RFC 7592 2.2-2.3: a client update never undoes a deletion or a secret rotation.

An update reads the client, verifies the request (which takes a while: validators,
a sector_identifier_uri fetch...), then writes. A deletion or rotation in between used to
be overwritten by that write: the deleted client came back with a valid registration
access token, or the old secret worked again. The change is made here from a
registration validator, which runs between the read and the write, so the interleaving
is deterministic; tests/storage/test_client_management_races.py races real threads on
each backend.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pyop.client_authentication import client_secret_matches
from pyop.exceptions import InvalidRegistrationAccessToken

from .helpers import bearer

WEB_URI = "https://rp.example.com/cb"


def register(op: Any) -> dict[str, Any]:
    return dict(op.handle_client_registration_request(
        json.dumps({"redirect_uris": [WEB_URI]})).to_dict())


def update_body(client_id: str, **extra: Any) -> str:
    return json.dumps({"client_id": client_id, "redirect_uris": [WEB_URI], **extra})


def during_verification(op: Any, action: Any) -> None:
    """Run ``action`` once, between an update's read and its write."""
    done: list[bool] = []

    def validator(request: Any) -> None:
        if not done:
            done.append(True)
            action()

    op.registration_request_validators.append(validator)


def test_rfc7592_2_3_update_racing_delete_does_not_resurrect(op: Any) -> None:
    registered = register(op)
    client_id = registered["client_id"]
    headers = bearer(registered["registration_access_token"])
    during_verification(op, lambda: op.handle_client_delete_request(client_id, headers))
    with pytest.raises(InvalidRegistrationAccessToken):
        op.handle_client_update_request(client_id, update_body(client_id, client_name="x"),
                                        headers)
    assert op.get_client(client_id) is None
    with pytest.raises(InvalidRegistrationAccessToken):
        op.handle_client_read_request(client_id, headers)
    # the tombstone holds nothing a client could use
    assert set(op.clients[client_id]) == {"client_deleted_at"}


def test_rfc7592_2_2_update_racing_rotation_keeps_the_new_secret(op: Any) -> None:
    registered = register(op)
    client_id, old_secret = registered["client_id"], registered["client_secret"]
    headers = bearer(registered["registration_access_token"])
    rotated: list[str] = []
    during_verification(op, lambda: rotated.append(op.rotate_client_secret(client_id)))
    updated = op.handle_client_update_request(
        client_id, update_body(client_id, client_name="after"), headers)
    assert updated["client_name"] == "after"  # the update is applied, over the rotation
    client = op.get_client(client_id)
    assert client_secret_matches(client, rotated[0])
    assert not client_secret_matches(client, old_secret)


def test_rfc7592_2_2_update_presenting_a_rotated_away_secret_refused(op: Any) -> None:
    """An update whose body carries the secret that a concurrent rotation replaced is
    refused on its retry, as it would have been after the rotation."""
    from pyop.exceptions import InvalidClientRegistrationRequest

    registered = register(op)
    client_id, old_secret = registered["client_id"], registered["client_secret"]
    headers = bearer(registered["registration_access_token"])
    during_verification(op, lambda: op.rotate_client_secret(client_id))
    with pytest.raises(InvalidClientRegistrationRequest):
        op.handle_client_update_request(
            client_id, update_body(client_id, client_secret=old_secret), headers)
    assert not client_secret_matches(op.get_client(client_id), old_secret)


def test_rfc7592_2_3_rotation_of_deleted_client_refused(op: Any) -> None:
    registered = register(op)
    client_id = registered["client_id"]
    op.handle_client_delete_request(client_id, bearer(registered["registration_access_token"]))
    with pytest.raises(ValueError):
        op.rotate_client_secret(client_id)
    assert set(op.clients[client_id]) == {"client_deleted_at"}


def test_rfc7592_2_3_deleted_client_id_never_registered_again(op: Any,
                                                            monkeypatch: Any) -> None:
    """Registration does not reuse the id of a tombstone."""
    import secrets

    registered = register(op)
    client_id = registered["client_id"]
    op.handle_client_delete_request(client_id, bearer(registered["registration_access_token"]))
    draws = iter([client_id, "fresh-client-id"])
    real = secrets.token_urlsafe
    monkeypatch.setattr("pyop.endpoints.registration.secrets.token_urlsafe",
                        lambda n=None: next(draws) if n == 16 else real(n))
    assert register(op)["client_id"] == "fresh-client-id"
    assert set(op.clients[client_id]) == {"client_deleted_at"}
