"""``pyop check ISSUER_URL``: what a relying party would trip over at a provider.

Fetches the discovery document (OIDC Discovery 4) and the JWK Set of its ``jwks_uri``
(RFC 7517 5) and reports findings, each ``error`` (a relying party following the
specifications fails), ``warning`` (some fail, or it is unsafe) or ``info``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

import requests

from ..util import is_loopback_host, response_type_set
from .output import EXIT_FAILURE, EXIT_FINDINGS, EXIT_OK, print_json, print_table

__all__ = ["Finding", "SEVERITIES", "check_issuer", "fetch_json"]

#: Severities of findings, most severe first.
SEVERITIES = ("error", "warning", "info")

#: Default timeout of each HTTP request, in seconds.
DEFAULT_TIMEOUT = 10.0

#: Largest document read, in bytes.
MAX_DOCUMENT_SIZE = 1024 * 1024

#: Discovery metadata an OP must publish (OIDC Discovery 3); ``token_endpoint`` is
#: required unless only the implicit flow is offered.
REQUIRED_METADATA = ("issuer", "authorization_endpoint", "jwks_uri", "response_types_supported",
                     "subject_types_supported", "id_token_signing_alg_values_supported")

#: Discovery metadata OIDC Discovery 3 recommends.
RECOMMENDED_METADATA = ("userinfo_endpoint", "scopes_supported", "claims_supported")

#: Discovery members that are URLs a relying party (or its user agent) calls.
URL_METADATA = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                "registration_endpoint", "end_session_endpoint", "revocation_endpoint",
                "introspection_endpoint", "check_session_iframe",
                "pushed_authorization_request_endpoint")

_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


@dataclass
class Finding:
    """One thing a relying party would trip over."""

    #: ``error``, ``warning`` or ``info``.
    severity: str
    #: A stable short name, e.g. ``issuer-mismatch``.
    code: str
    #: What is wrong, for people.
    message: str


def fetch_json(url: str, timeout: float = DEFAULT_TIMEOUT,
               session: Optional[requests.Session] = None) -> tuple[Any, Optional[str]]:
    """GET ``url`` and parse its JSON body.

    :returns: ``(document, None)``, or ``(None, problem)`` where ``problem`` starts
        with ``unreachable:`` when no HTTP response came.
    """
    getter = session or requests
    try:
        response = getter.get(url, timeout=timeout, headers={"Accept": "application/json"},
                              stream=True)
    except requests.RequestException as e:
        return None, f"unreachable: {type(e).__name__}"
    try:
        if response.status_code != 200:
            return None, f"HTTP status {response.status_code}"
        body = response.raw.read(MAX_DOCUMENT_SIZE + 1, decode_content=True)
    except (requests.RequestException, OSError) as e:
        return None, f"unreachable: {type(e).__name__}"
    finally:
        response.close()
    if len(body) > MAX_DOCUMENT_SIZE:
        return None, f"larger than {MAX_DOCUMENT_SIZE} bytes"
    try:
        return json.loads(body), None
    except ValueError:
        return None, "not JSON"


def _is_url(value: Any) -> bool:
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        return False
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_metadata(issuer_url: str, doc: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    add = findings.append
    issuer = doc.get("issuer")
    if issuer is not None and issuer != issuer_url:
        hint = (" (they differ only in a trailing slash)" if isinstance(issuer, str)
                and issuer.rstrip("/") == issuer_url.rstrip("/") else "")
        add(Finding("error", "issuer-mismatch",
                    f"issuer {issuer!r} is not the URL checked {issuer_url!r}{hint}: relying "
                    "parties reject the document and every ID token (OIDC Discovery 4.3)"))
    for name in REQUIRED_METADATA:
        if not doc.get(name):
            add(Finding("error", "missing-metadata",
                        f"{name} is missing (required, OIDC Discovery 3)"))
    response_types = [rt for rt in doc.get("response_types_supported") or []
                      if isinstance(rt, str)]
    uses_code = any("code" in response_type_set(rt) for rt in response_types)
    if uses_code and not doc.get("token_endpoint"):
        add(Finding("error", "missing-metadata",
                    "token_endpoint is missing but response_types_supported has code "
                    "(OIDC Discovery 3)"))
    for name in RECOMMENDED_METADATA:
        if name not in doc:
            add(Finding("info", "recommended-metadata",
                        f"{name} is not published (recommended, OIDC Discovery 3)"))

    issuer_host = urlsplit(issuer_url).hostname
    for name in URL_METADATA:
        value = doc.get(name)
        if value is None:
            continue
        if not _is_url(value):
            add(Finding("error", "invalid-url", f"{name} is not an http(s) URL: {value!r}"))
            continue
        parts = urlsplit(value)
        if parts.scheme != "https" and not is_loopback_host(parts.hostname):
            add(Finding("error", "http-endpoint",
                        f"{name} {value} is not https (OIDC Discovery 3, RFC 6749 3.1, 3.2)"))
        if parts.hostname != issuer_host:
            add(Finding("warning", "other-host",
                        f"{name} is on {parts.hostname}, not the issuer's host {issuer_host}"))

    algs = doc.get("id_token_signing_alg_values_supported")
    if isinstance(algs, list) and algs:
        if "RS256" not in algs:
            add(Finding("error", "rs256-missing",
                        "id_token_signing_alg_values_supported lacks RS256, which relying "
                        "parties expect by default (OIDC Discovery 3, OIDC Core 15.1)"))
        if "none" in algs:
            add(Finding("warning", "alg-none",
                        "id_token_signing_alg_values_supported lists none: unsigned ID tokens"))

    grant_types = doc.get("grant_types_supported", ["authorization_code", "implicit"])
    if isinstance(grant_types, list):
        implicit = any(response_type_set(rt) & {"id_token", "token"}
                       for rt in response_types if response_type_set(rt) != {"code"})
        if uses_code and "authorization_code" not in grant_types:
            add(Finding("error", "grant-types",
                        "response_types_supported has code but grant_types_supported lacks "
                        "authorization_code (OIDC Discovery 3, RFC 7591 2.1)"))
        if implicit and "implicit" not in grant_types:
            add(Finding("error", "grant-types",
                        "response_types_supported returns tokens from the authorization "
                        "endpoint but grant_types_supported lacks implicit (RFC 7591 2.1)"))
        if "authorization_code" in grant_types and not uses_code:
            add(Finding("warning", "grant-types",
                        "grant_types_supported has authorization_code but no response type "
                        "with code"))
        if "implicit" in grant_types and not implicit and "grant_types_supported" in doc:
            add(Finding("info", "grant-types",
                        "grant_types_supported has implicit but no response type returns "
                        "tokens from the authorization endpoint"))
    subject_types = doc.get("subject_types_supported")
    if isinstance(subject_types, list):
        unknown = [t for t in subject_types if t not in ("public", "pairwise")]
        if unknown:
            add(Finding("error", "subject-types",
                        f"subject_types_supported has unknown values {unknown} "
                        "(OIDC Core 8)"))
    return findings


def _key_fits(jwk: Mapping[str, Any], alg: str) -> bool:
    if jwk.get("use") not in (None, "sig"):
        return False
    if jwk.get("alg") not in (None, alg):
        return False
    kty = jwk.get("kty")
    if alg[:2] in ("RS", "PS"):
        return kty == "RSA"
    if alg in _EC_CURVES:
        return kty == "EC" and jwk.get("crv") == _EC_CURVES[alg]
    if alg == "EdDSA":
        return kty == "OKP" and jwk.get("crv") in ("Ed25519", "Ed448")
    if alg == "Ed25519":  # RFC 9864 2.2: the fully-specified alg, Ed25519 keys only
        return kty == "OKP" and jwk.get("crv") == "Ed25519"
    return False


def _check_jwks(jwks: Any, doc: Mapping[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    add = findings.append
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        return [Finding("error", "jwks-invalid", "the jwks_uri document is not a JWK Set "
                                                 "(no keys array, RFC 7517 5)")]
    keys = [k for k in keys if isinstance(k, Mapping)]
    if not keys:
        add(Finding("error", "jwks-empty", "the JWK Set has no keys"))
    for index, jwk in enumerate(keys):
        name = f"key {jwk.get('kid', '#' + str(index))!s}"
        private = sorted(_PRIVATE_JWK_MEMBERS & set(jwk))
        if private:
            add(Finding("error", "private-key-published",
                        f"{name} publishes private members {private}: replace the key now"))
        if "kty" not in jwk:
            add(Finding("error", "jwk-invalid", f"{name} has no kty (RFC 7517 4.1)"))
        if "use" not in jwk:
            add(Finding("warning", "jwk-use",
                        f"{name} has no use: some clients skip keys without use=sig"))
        if "alg" not in jwk:
            add(Finding("warning", "jwk-alg",
                        f"{name} has no alg: some clients cannot pick it for an algorithm"))
        if "kid" not in jwk and len(keys) > 1:
            add(Finding("error", "jwk-kid",
                        f"{name} has no kid while the set has several keys: clients cannot "
                        "pick the key of a token (OIDC Core 10.1.1)"))
    duplicates = [kid for kid, count in Counter(
        k["kid"] for k in keys if isinstance(k.get("kid"), str)).items() if count > 1]
    for kid in duplicates:
        add(Finding("error", "duplicate-kid", f"several keys have kid {kid!r} (RFC 7517 4.5)"))
    for member, severity in (("id_token_signing_alg_values_supported", "error"),
                             ("userinfo_signing_alg_values_supported", "warning"),
                             ("request_object_signing_alg_values_supported", None)):
        if severity is None:
            continue
        for alg in doc.get(member) or []:
            if not isinstance(alg, str) or alg == "none" or alg.startswith("HS"):
                continue
            if not any(_key_fits(jwk, alg) for jwk in keys):
                add(Finding(severity, "alg-without-key",
                            f"{member} has {alg} but the JWK Set has no key for it"))
    return findings


def check_issuer(issuer_url: str, timeout: float = DEFAULT_TIMEOUT,
                 session: Optional[requests.Session] = None) -> tuple[list[Finding], bool]:
    """Check a provider as a relying party would see it.

    :param issuer_url: the issuer identifier; the discovery document is read from
        ``ISSUER/.well-known/openid-configuration`` (OIDC Discovery 4).
    :returns: ``(findings, reachable)``: ``reachable`` is false when the discovery
        document could not be fetched at all (network failure).
    """
    findings: list[Finding] = []
    parts = urlsplit(issuer_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [Finding("error", "issuer-url", f"{issuer_url!r} is not an http(s) URL")], True
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        findings.append(Finding("error", "http-issuer",
                                "the issuer is http on a host that is not loopback: it must "
                                "be https (OIDC Discovery 3)"))
    if parts.query or parts.fragment:
        findings.append(Finding("error", "issuer-url",
                                "the issuer has a query or fragment (OIDC Discovery 3)"))
    url = issuer_url.rstrip("/") + "/.well-known/openid-configuration"
    doc, problem = fetch_json(url, timeout, session)
    if problem:
        findings.append(Finding("error", "discovery-unavailable", f"{url}: {problem}"))
        return findings, not problem.startswith("unreachable")
    if not isinstance(doc, Mapping):
        findings.append(Finding("error", "discovery-invalid", f"{url}: not a JSON object"))
        return findings, True
    findings.extend(_check_metadata(issuer_url, doc))
    jwks_uri = doc.get("jwks_uri")
    if isinstance(jwks_uri, str) and _is_url(jwks_uri):
        jwks, problem = fetch_json(jwks_uri, timeout, session)
        if problem:
            findings.append(Finding("error", "jwks-unavailable", f"{jwks_uri}: {problem}"))
        else:
            findings.extend(_check_jwks(jwks, doc))
    order = {severity: i for i, severity in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: order[f.severity])
    return findings, True


def _check(args: argparse.Namespace) -> int:
    findings, reachable = check_issuer(args.issuer, timeout=args.timeout)
    shown = [f for f in findings
             if SEVERITIES.index(f.severity) <= SEVERITIES.index(args.min_severity)]
    if args.json:
        print_json({"issuer": args.issuer, "findings": [asdict(f) for f in shown]})
    elif shown:
        print_table([[f.severity, f.code, f.message] for f in shown],
                    ["SEVERITY", "CODE", "FINDING"])
    else:
        print(f"{args.issuer}: no findings")
    if not reachable:
        return EXIT_FAILURE
    return EXIT_FINDINGS if any(f.severity == "error" for f in findings) else EXIT_OK


def add_parser(commands: Any) -> None:
    """Add ``check`` to the sub-commands of the ``pyop`` parser."""
    check = commands.add_parser(
        "check", help="check a provider's discovery document and JWK Set",
        description="Fetch ISSUER_URL/.well-known/openid-configuration and the JWK Set of "
                    "its jwks_uri, and report what a relying party would trip over. Exit "
                    "status 1 when there are errors, 3 when the provider is unreachable.")
    check.add_argument("issuer", metavar="ISSUER_URL")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                       help=f"seconds per HTTP request (default {DEFAULT_TIMEOUT:g})")
    check.add_argument("--min-severity", choices=SEVERITIES, default="info",
                       help="show findings of this severity and above (default info)")
    check.set_defaults(func=_check)

