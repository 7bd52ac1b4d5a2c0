"""``pyop clients``: list, show, add, delete client registrations and rotate their secrets,
in any storage :meth:`StorageBase.from_uri <pyop.storage.StorageBase.from_uri>` accepts.

``add`` goes through :meth:`Provider.handle_client_registration_request
<pyop.provider.Provider.handle_client_registration_request>`: the metadata gets the checks
of dynamic registration (OIDC Dynamic Registration 2, 3.1 and the validators of
:mod:`pyop.registration`) and the client its ``client_id`` and secret as registration
issues them (hashed with ``--hash-secrets``, see
:func:`~pyop.client_authentication.hash_client_secret`). ``rotate-secret`` is
:meth:`Provider.rotate_client_secret <pyop.provider.Provider.rotate_client_secret>`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..authz_state import AuthorizationState
from ..client_authentication import SUPPORTED_AUTH_METHODS
from ..crypto import SUPPORTED_ALGS, SigningKey
from ..exceptions import InvalidClientRegistrationRequest, InvalidConfiguration, OAuthError
from ..provider import Provider
from ..storage import StorageBase
from ..subject_identifier import HashBasedSubjectIdentifierFactory
from ..userinfo import Userinfo
from .output import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    Progress,
    format_time,
    print_json,
    print_table,
)

__all__: list[str] = []

#: The collection of the clients in the documentation and the example provider.
DEFAULT_COLLECTION = "clients"

#: Members whose values are secrets (or hashes of secrets): masked unless ``--show-secret``.
SECRET_MEMBERS = ("client_secret", "client_secret_hash", "registration_access_token_hash")

MASK = "********"

#: The algs ``clients add`` accepts without ``--provider-config`` for the ID token and
#: UserInfo (a throw-away key is made for each) and for request objects.
_ADMIN_SIGNING_ALGS = ["RS256", "PS256", "ES256", "EdDSA"]

#: The provider capabilities ``clients add`` validates against without
#: ``--provider-config``: everything pyop can do, so that only the metadata's own
#: consistency is checked. A provider offers the capabilities beyond pyop 3's only when
#: configured (see the configuration documentation), so each is listed here explicitly.
DEFAULT_ADMIN_CONFIGURATION: dict[str, Any] = {
    "issuer": "https://localhost",
    "authorization_endpoint": "https://localhost/authorization",
    "token_endpoint": "https://localhost/token",
    "response_types_supported": ["code", "id_token", "id_token token", "code id_token",
                                 "code token", "code id_token token"],
    "response_modes_supported": ["query", "fragment", "form_post"],
    "grant_types_supported": ["authorization_code", "implicit", "refresh_token",
                              "client_credentials"],
    "subject_types_supported": ["public", "pairwise"],
    "token_endpoint_auth_methods_supported": list(SUPPORTED_AUTH_METHODS),
    "id_token_signing_alg_values_supported": list(_ADMIN_SIGNING_ALGS),
    "userinfo_signing_alg_values_supported": list(_ADMIN_SIGNING_ALGS),
    "request_parameter_supported": True,
    "request_object_signing_alg_values_supported": sorted(
        alg for alg in SUPPORTED_ALGS if not alg.startswith("HS")),
    "claims_parameter_supported": True,
    "code_challenge_methods_supported": ["S256"],
}


# -- storage ---------------------------------------------------------------------------------

def add_storage_options(parser: argparse.ArgumentParser) -> None:
    """``--storage``, ``--collection`` and ``--db-name``."""
    parser.add_argument("--storage", metavar="URI", default=os.environ.get("PYOP_STORAGE_URI"),
                        help="storage URI of the clients, e.g. sqlite:////var/lib/op/op.db, "
                             "redis://host:6379/0, mongodb://host/db "
                             "(default: $PYOP_STORAGE_URI)")
    parser.add_argument("--collection", default=DEFAULT_COLLECTION,
                        help=f"collection of the clients (default {DEFAULT_COLLECTION})")
    parser.add_argument("--db-name", default=None,
                        help="db_name given to StorageBase.from_uri: the MongoDB database, "
                             "the Redis database index, the SQL collection prefix "
                             "(SATOSA uses satosa, the example provider pyop)")


@contextmanager
def open_store(args: argparse.Namespace) -> Iterator[StorageBase]:
    """The clients store of ``args``, closed afterwards."""
    if not args.storage:
        raise CommandError("no storage: give --storage URI or set PYOP_STORAGE_URI", EXIT_USAGE)
    try:
        store = StorageBase.from_uri(args.storage, collection=args.collection,
                                     db_name=args.db_name)
    except ValueError as e:
        raise CommandError(f"storage URI: {e}", EXIT_USAGE) from e
    except ImportError as e:
        raise CommandError(str(e), EXIT_FAILURE) from e
    except Exception as e:  # a driver failing to connect: never print the URI (password)
        raise CommandError(f"cannot open the storage: {type(e).__name__}", EXIT_FAILURE) from e
    try:
        yield store
    finally:
        try:
            store.close()
        except Exception:  # noqa: S110 - closing is best effort
            pass


def _get_client(store: StorageBase, client_id: str) -> dict[str, Any]:
    client = store.get(client_id)
    if not isinstance(client, Mapping):
        raise CommandError(f"no client {client_id!r}")
    return dict(client)


def masked(client: Mapping[str, Any], show_secret: bool = False) -> dict[str, Any]:
    """A copy of ``client`` with its secrets masked (unless ``show_secret``)."""
    return {name: (MASK if name in SECRET_MEMBERS and value and not show_secret else value)
            for name, value in client.items()}


# -- an administrative provider --------------------------------------------------------------

def _key_for_alg(alg: str) -> SigningKey:
    key: Any
    if alg.startswith(("RS", "PS")):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif alg == "ES512":
        key = ec.generate_private_key(ec.SECP521R1())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    return SigningKey(key, alg)


def _provider_configuration(source: Optional[str]) -> dict[str, Any]:
    if source is None:
        return dict(DEFAULT_ADMIN_CONFIGURATION)
    if source.startswith(("https://", "http://")):
        from .check import fetch_json

        url = source if "/.well-known/" in source else (
            source.rstrip("/") + "/.well-known/openid-configuration")
        document, problem = fetch_json(url)
        if problem:
            raise CommandError(f"{url}: {problem}", EXIT_FAILURE)
    else:
        try:
            document = json.loads(Path(source).read_text(encoding="utf-8"))
        except OSError as e:
            raise CommandError(f"{source}: {e.strerror or e}") from e
        except ValueError as e:
            raise CommandError(f"{source}: not JSON") from e
    if not isinstance(document, dict):
        raise CommandError(f"{source}: not a JSON object")
    return document


def admin_provider(clients: Any, configuration: Mapping[str, Any],
                   hash_client_secrets: bool) -> Provider:
    """A :class:`~pyop.provider.Provider` over ``clients`` with ``configuration``'s
    capabilities, for registration checks and secret rotation only.

    It holds a throw-away key for each alg of ``id_token_signing_alg_values_supported``
    and ``userinfo_signing_alg_values_supported`` (never used: nothing is signed), and
    no ``registration_endpoint`` (no registration access token is issued).
    """
    config = {name: value for name, value in configuration.items()
              if name not in ("registration_endpoint", "jwks_uri")}
    if not config.get("authorization_endpoint"):
        config["authorization_endpoint"] = str(config.get("issuer", "")).rstrip("/") + "/auth"
    algs: list[str] = []
    for name in ("id_token_signing_alg_values_supported",
                 "userinfo_signing_alg_values_supported"):
        for alg in config.get(name) or []:
            if alg in SUPPORTED_ALGS and alg not in algs:
                algs.append(alg)
    for name in ("id_token_signing_alg_values_supported",
                 "userinfo_signing_alg_values_supported"):
        if isinstance(config.get(name), list):
            config[name] = [alg for alg in config[name] if alg in SUPPORTED_ALGS]
    keys = [_key_for_alg(alg) for alg in algs or ["RS256"]]
    try:
        return Provider(keys[0], config,
                        AuthorizationState(HashBasedSubjectIdentifierFactory("unused")),
                        clients, Userinfo({}), signing_keys=keys[1:],
                        hash_client_secrets=hash_client_secrets)
    except InvalidConfiguration as e:
        raise CommandError(f"provider configuration: {e}") from e


# -- commands --------------------------------------------------------------------------------

def _list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    with open_store(args) as store:
        client_ids = sorted(store.keys())
        with Progress(len(client_ids), "clients") as progress:
            for client_id in client_ids:
                client = store.get(client_id)
                progress.update()
                if not isinstance(client, Mapping):
                    continue
                rows.append({
                    "client_id": client_id,
                    "client_name": client.get("client_name"),
                    "redirect_uris": client.get("redirect_uris") or [],
                    "token_endpoint_auth_method": client.get(
                        "token_endpoint_auth_method", "client_secret_basic"),
                    "client_id_issued_at": client.get("client_id_issued_at"),
                    "client_secret_expires_at": client.get("client_secret_expires_at"),
                })
    if args.json:
        print_json(rows)
    else:
        print_table([[r["client_id"], r["client_name"], r["redirect_uris"],
                      r["token_endpoint_auth_method"], format_time(r["client_id_issued_at"]),
                      format_time(r["client_secret_expires_at"])] for r in rows],
                    ["CLIENT_ID", "NAME", "REDIRECT_URIS", "AUTH_METHOD", "CREATED",
                     "SECRET_EXPIRES"])
    return EXIT_OK


def _print_record(record: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(dict(record))
        return
    rows = []
    for name, value in record.items():
        if name in ("client_id_issued_at", "client_secret_expires_at") and value is not None:
            value = f"{value} ({format_time(value)})"
        elif isinstance(value, (dict, list)) and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)):
            value = json.dumps(value)
        rows.append([name, value])
    print_table(rows, ["MEMBER", "VALUE"])


def _show(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        client = _get_client(store, args.client_id)
    _print_record(masked(client, args.show_secret), args.json)
    return EXIT_OK


def _read_metadata(args: argparse.Namespace) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if args.metadata:
        try:
            text = sys.stdin.read() if args.metadata == "-" else Path(args.metadata).read_text(
                encoding="utf-8")
        except OSError as e:
            raise CommandError(f"{args.metadata}: {e.strerror or e}") from e
        try:
            metadata = json.loads(text)
        except ValueError as e:
            raise CommandError(f"{args.metadata}: not JSON ({e})") from e
        if not isinstance(metadata, dict):
            raise CommandError(f"{args.metadata}: client metadata must be a JSON object")
    flags = {"redirect_uris": args.redirect_uri, "response_types": args.response_type,
             "grant_types": args.grant_type,
             "post_logout_redirect_uris": args.post_logout_redirect_uri,
             "client_name": args.name, "token_endpoint_auth_method": args.auth_method,
             "scope": args.scope, "subject_type": args.subject_type}
    for name, value in flags.items():
        if value:
            metadata[name] = value
    return metadata


def _deliver_secret(secret: str, path: Optional[str]) -> bool:
    """Write ``secret`` to ``path`` (mode 0600); False without a path."""
    if not path:
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    print(f"client secret written to {path}", file=sys.stderr)
    return True


def _add(args: argparse.Namespace) -> int:
    metadata = _read_metadata(args)
    configuration = _provider_configuration(args.provider_config)
    registered: dict[str, Any] = {}
    provider = admin_provider(registered, configuration, args.hash_secrets)
    try:
        response = provider.handle_client_registration_request(metadata)
    except InvalidClientRegistrationRequest as e:
        raise CommandError(f"invalid client metadata ({e.oauth_error}): {e}") from e
    except OAuthError as e:
        raise CommandError(f"invalid client metadata: {e}") from e
    record = dict(registered[response["client_id"]])
    client_id = args.client_id or record["client_id"]
    record["client_id"] = client_id
    with open_store(args) as store:
        if not store.add(client_id, record):
            raise CommandError(f"a client {client_id!r} exists already")
    secret = response.get("client_secret")
    written = _deliver_secret(secret, args.secret_file) if secret else False
    shown = masked(record)
    if secret and not written:
        shown["client_secret"] = secret
    _print_record(shown, args.json)
    if secret and not written:
        print("the client secret is shown once: give it to the client now", file=sys.stderr)
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        if not store.delete(args.client_id):
            raise CommandError(f"no client {args.client_id!r}")
    print(f"deleted client {args.client_id}", file=sys.stderr)
    return EXIT_OK


def _rotate_secret(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        client = _get_client(store, args.client_id)
        hashed = args.hash_secrets or "client_secret_hash" in client
        provider = admin_provider(store, DEFAULT_ADMIN_CONFIGURATION, hashed)
        try:
            secret = provider.rotate_client_secret(args.client_id, expires_at=args.expires_at)
        except ValueError as e:
            raise CommandError(f"{args.client_id}: {e}") from e
    if not _deliver_secret(secret, args.secret_file):
        if args.json:
            print_json({"client_id": args.client_id, "client_secret": secret,
                        "client_secret_expires_at": args.expires_at})
        else:
            print(secret)
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Add ``clients`` to the sub-commands of the ``pyop`` parser."""
    clients = commands.add_parser(
        "clients", help="list, show, add, delete clients; rotate their secrets",
        description="Client registrations in a storage (StorageBase.from_uri).")
    sub = clients.add_subparsers(dest="clients_command", metavar="COMMAND")
    sub.required = True

    def command(name: str, text: str, func: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
        add_storage_options(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=func)
        return parser

    command("list", "List the clients: id, name, redirect URIs, authentication method, "
                    "creation and secret expiry.", _list)
    show = command("show", "Print one client's metadata (secrets masked).", _show)
    show.add_argument("client_id", metavar="CLIENT_ID")
    show.add_argument("--show-secret", action="store_true",
                      help="print the client secret (and hashes) instead of masking them")

    add = command("add", "Register a client: its metadata is validated as dynamic "
                         "registration does; a client_id and a secret are issued.", _add)
    add.add_argument("--metadata", metavar="FILE",
                     help="client metadata as a JSON object (OIDC Dynamic Registration 2); "
                          "- reads standard input")
    add.add_argument("--redirect-uri", action="append", metavar="URI",
                     help="a redirect URI (repeatable)")
    add.add_argument("--name", help="client_name")
    add.add_argument("--auth-method", help="token_endpoint_auth_method "
                                           "(default client_secret_basic)")
    add.add_argument("--response-type", action="append", metavar="TYPE",
                     help="a response type, e.g. code (repeatable; default code)")
    add.add_argument("--grant-type", action="append", metavar="TYPE",
                     help="a grant type (repeatable; default from the response types)")
    add.add_argument("--post-logout-redirect-uri", action="append", metavar="URI",
                     help="a post-logout redirect URI (repeatable)")
    add.add_argument("--scope", help="scope values the client may request (space separated)")
    add.add_argument("--subject-type", choices=("public", "pairwise"))
    add.add_argument("--client-id", help="the client_id (default: a random one, "
                                         "as registration issues)")
    add.add_argument("--provider-config", metavar="FILE_OR_URL",
                     help="the provider's discovery document (a JSON file, or the issuer "
                          "URL to fetch it from) to check the metadata against its "
                          "capabilities; default: everything pyop supports")
    add.add_argument("--hash-secrets", action="store_true",
                     help="store a salted hash of the secret, as Provider("
                          "hash_client_secrets=True) does")
    add.add_argument("--secret-file", metavar="FILE",
                     help="write the secret to FILE (mode 0600) instead of printing it")

    delete = command("delete", "Delete a client.", _delete)
    delete.add_argument("client_id", metavar="CLIENT_ID")

    rotate = command("rotate-secret", "Issue a new client secret (the old one stops "
                                      "working) and print it.", _rotate_secret)
    rotate.add_argument("client_id", metavar="CLIENT_ID")
    rotate.add_argument("--expires-at", type=int, default=0, metavar="UNIX_TIME",
                        help="client_secret_expires_at (default 0: never)")
    rotate.add_argument("--hash-secrets", action="store_true",
                        help="store a hash of the new secret (default: hashed when the "
                             "client's secret is hashed)")
    rotate.add_argument("--secret-file", metavar="FILE",
                        help="write the secret to FILE (mode 0600) instead of printing it")
