"""What a DPoP-bound code flow costs, against one ID token signature.

``python -m benchmarks.dpop_flow [--batches N] [--batch-seconds S]`` times, in one run and
on the in-memory stores of :mod:`benchmarks.flows` (RS256 2048-bit ID tokens):

- the bearer code flow (parse -> authorize -> token -> UserInfo), as ``python -m benchmarks``;
- the same flow with DPoP (RFC 9449): an ES256 proof at the token endpoint and one (with
  ``ath``) at UserInfo, each verified and its ``jti`` recorded, the token bound with
  ``cnf.jkt``;
- the client's side of it (making the two ES256 proofs), so that the provider's share is
  the DPoP flow minus the proofs;

each as a ratio to one RS256 signature timed in alternating batches (the medians of the
per-batch-pair ratios, which hold on a noisy, shared machine).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyop.crypto import SigningKey, b64url_encode
from pyop.dpop import access_token_hash

from .flows import (
    BASIC_AUTH,
    CODE_QUERY,
    ISSUER,
    TOKEN_BODY_PREFIX,
    TOKEN_BODY_SUFFIX,
    USER_ID,
    build_provider,
    code_flow,
    id_token_payload,
    measure,
    signature_floor,
)

__all__ = ["main"]

TOKEN_URL = ISSUER + "/token"
USERINFO_URL = ISSUER + "/userinfo"


class ProofMaker:
    """A client's ES256 DPoP key, making proofs (RFC 9449 4.2)."""

    def __init__(self) -> None:
        self.key = SigningKey(ec.generate_private_key(ec.SECP256R1()))
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.public_jwk}
        self._header = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
        self.iat = 0

    def proof(self, htm: str, htu: str, access_token: str = "") -> str:
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(12), "htm": htm, "htu": htu,
                                  "iat": self.iat}
        if access_token:
            claims["ath"] = access_token_hash(access_token)
        signing_input = self._header + "." + b64url_encode(
            json.dumps(claims, separators=(",", ":")).encode())
        return signing_input + "." + b64url_encode(self.key.sign(signing_input.encode()))


def dpop_code_flow(provider: Any, maker: ProofMaker) -> tuple[Any, Any]:
    """The code flow of :func:`benchmarks.flows.code_flow`, with DPoP proofs."""
    maker.iat = int(provider.clock())
    authn_req = provider.parse_authentication_request(CODE_QUERY)
    response = provider.authorize(authn_req, USER_ID)
    body = TOKEN_BODY_PREFIX + response["code"] + TOKEN_BODY_SUFFIX
    tokens = provider.handle_token_request(
        body, {"Authorization": BASIC_AUTH, "DPoP": maker.proof("POST", TOKEN_URL)})
    token = tokens["access_token"]
    claims = provider.handle_userinfo_request("", {
        "Authorization": "DPoP " + token, "DPoP": maker.proof("GET", USERINFO_URL, token)},
        http_method="GET")
    return tokens, claims


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dpop_flow",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=21)
    parser.add_argument("--batch-seconds", type=float, default=0.15)
    parser.add_argument("--quick", action="store_true", help="3 short batches (a smoke run)")
    args = parser.parse_args(argv)
    batches, seconds = (3, 0.03) if args.quick else (args.batches, args.batch_seconds)

    key = SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
    deployment = build_provider(key, "memory")
    provider = deployment.provider
    provider.configuration_information["dpop_signing_alg_values_supported"] = [
        "ES256", "PS256", "EdDSA"]
    maker = ProofMaker()
    tokens, _ = dpop_code_flow(provider, maker)
    if tokens["token_type"] != "DPoP":  # a flow that does not work must not be timed
        raise SystemExit("the DPoP flow did not issue a DPoP-bound token")
    floor = signature_floor(key, id_token_payload(tokens["id_token"]))

    def proofs() -> None:
        maker.proof("POST", TOKEN_URL)
        maker.proof("GET", USERINFO_URL, "an-access-token-value")

    scenarios: list[tuple[str, Callable[[], Any]]] = [
        ("bearer code flow", lambda: code_flow(provider)),
        ("DPoP code flow (with the client's 2 proofs)", lambda: dpop_code_flow(provider, maker)),
        ("client's 2 ES256 proofs", proofs),
    ]
    ratios: dict[str, float] = {}
    for name, op in scenarios:
        m = measure(op, floor, batches, seconds)
        ratios[name] = m.ratio
        print(f"{name:45s} {m.op_median * 1e3:7.3f} ms  {m.ratio:5.2f} x one RS256 signature "
              f"({m.floor_median * 1e3:.3f} ms)")
    provider_share = (ratios[scenarios[1][0]] - ratios[scenarios[2][0]])
    print(f"{'DPoP code flow, provider side':45s} {'':7s}     {provider_share:5.2f} x one RS256 "
          f"signature (bearer: {ratios[scenarios[0][0]]:.2f})")
    deployment.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
