"""Scenario runner for the differential tests against pyop 3.5.0.

Run as a script by an interpreter that has pyop 3.5.0 installed: it reads
``{"now": ..., "key_pem": ..., "scenarios": [...]}`` as JSON on stdin and prints
``{"results": {scenario id: result}}`` as JSON on stdout. ``time.time`` is
replaced by a fixed clock in that process, so ``iat``/``exp`` and every expiry
are deterministic.

The same module is imported by ``tests/compat/ours.py``, which calls :func:`run`
in-process against this library with an injected clock instead (``clock=``), so
both sides execute the very same code, written against pyop 3's public API
(``Provider``, ``AuthorizationState``, ``HashBasedSubjectIdentifierFactory``,
``Userinfo``, ``StorageBase.from_uri``). Random values (codes, tokens, client
credentials) never appear in the results: ID tokens are decoded, ``at_hash`` and
``c_hash`` are recomputed and reported as ``"ok"``/``"mismatch"``, and errors
are reported by their OAuth error code and exception class.

Only the standard library, ``pyop`` and its own dependencies (oic, pyjwkest) are
imported, so the script runs in a bare ``pip install pyop==3.5.0`` environment.
"""

from __future__ import annotations

import base64
import json
import sys
import traceback
from typing import Any, Callable, Optional
from urllib.parse import urlencode

#: Result of a call that raised: the OAuth error code and the exception's class names.
Outcome = dict[str, Any]


def error_outcome(error: BaseException) -> Outcome:
    """An exception as data: its ``oauth_error`` (if any) and its class hierarchy."""
    return {
        "error": getattr(error, "oauth_error", None),
        "exception": type(error).__name__,
        "classes": [cls.__name__ for cls in type(error).__mro__],
    }


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _as_dict(message: Any) -> dict[str, Any]:
    if hasattr(message, "to_dict"):
        return dict(message.to_dict())
    return dict(message)


class Runner:
    """Runs scenarios; ``clock`` is None under pyop 3 (time.time is patched instead)."""

    def __init__(self, key_pem: str, clock: Optional[Callable[[], float]] = None) -> None:
        self.key_pem = key_pem
        self.clock = clock
        #: the JWKS of the provider last built (for verifying its ID tokens like an RP)
        self.published_jwks: Optional[dict[str, Any]] = None
        self._private_key: Any = None
        self._published_keys: Any = None

    # -- building a provider the way pyop 3 deployments do ------------------------------------

    def private_key(self) -> Any:
        """The RSA key of ``key_pem``, loaded once (loading checks its primes: slow)."""
        if self._private_key is None:
            from jwkest.jwk import rsa_load

            self._private_key = rsa_load(self.key_pem)
        return self._private_key

    def signing_key(self, kid: Optional[str]) -> Any:
        """The key as SATOSA and the pyop 3 README build it: a jwkest RSAKey."""
        from jwkest.jwk import RSAKey

        kwargs = {} if kid is None else {"kid": kid}
        return RSAKey(key=self.private_key(), use="sig", alg="RS256", **kwargs)

    def _clock_kwargs(self) -> dict[str, Any]:
        return {} if self.clock is None else {"clock": self.clock}

    def provider(self, op: dict[str, Any]) -> Any:
        from pyop.authz_state import AuthorizationState
        from pyop.provider import Provider
        from pyop.storage import StorageBase
        from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
        from pyop.userinfo import Userinfo

        authz_kwargs = dict(op.get("authz_kwargs", {}))
        if op.get("storage") == "stateless":
            uri = "stateless://user:a-long-enough-stateless-secret@localhost"
            dbs = [StorageBase.from_uri(uri, collection=name, **self._clock_kwargs())
                   for name in ("authz_codes", "access_tokens", "refresh_tokens")]
            authz_kwargs.update(zip(("authorization_code_db", "access_token_db",
                                     "refresh_token_db"), dbs))
        authz_state = AuthorizationState(HashBasedSubjectIdentifierFactory(op.get("salt", "salt")),
                                         **authz_kwargs, **self._clock_kwargs())
        provider_kwargs = dict(op.get("provider_kwargs", {}))
        self.published_jwks = self._published_keys = None
        provider = Provider(self.signing_key(op.get("kid")), json.loads(json.dumps(op["config"])),
                        authz_state, json.loads(json.dumps(op.get("clients", {}))),
                        Userinfo(json.loads(json.dumps(op.get("users", {})))),
                        **provider_kwargs, **self._clock_kwargs())
        self.published_jwks = json.loads(json.dumps(provider.jwks))
        self._published_keys = None
        return provider

    # -- observing results --------------------------------------------------------------------

    def decode_id_token(self, token: str, code: Optional[str] = None,
                        access_token: Optional[str] = None) -> dict[str, Any]:
        """Header and claims of an ID token; the signature checked with the public key."""
        from jwkest.jwk import RSAKey
        from jwkest.jws import JWS, left_hash

        header_part, payload_part, _ = token.split(".")
        header = json.loads(_b64decode(header_part))
        claims = json.loads(_b64decode(payload_part))
        # the signature, with the configured key (whatever kid the header names) ...
        kid = {"kid": header["kid"]} if "kid" in header else {}
        public = RSAKey(key=self.private_key().publickey(), **kid)
        try:
            JWS().verify_compact(token, keys=[public])
            signature = "valid"
        except Exception as error:  # noqa: BLE001 - reported, compared
            signature = f"invalid: {type(error).__name__}"
        # ... and as a relying party does: with the keys of the published JWKS
        published = "not checked"
        if self.published_jwks is not None:
            from jwkest.jwk import load_jwks

            try:
                if self._published_keys is None:
                    self._published_keys = load_jwks(json.dumps(self.published_jwks))
                JWS().verify_compact(token, keys=self._published_keys)
                published = "valid"
            except Exception as error:  # noqa: BLE001
                published = f"invalid: {type(error).__name__}"
        hash_alg = "HS" + header.get("alg", "RS256")[-3:]
        for claim, value in (("c_hash", code), ("at_hash", access_token)):
            if claim in claims:
                expected = left_hash(value.encode("utf-8"), hash_alg) if value else None
                claims[claim] = "ok" if claims[claim] == expected else "mismatch"
        return {"header": header, "claims": claims, "signature": signature,
                "verified_with_published_jwks": published}

    @staticmethod
    def extra_claims(spec: Optional[dict[str, Any]]) -> Any:
        """``{"dict": {...}}`` or ``{"callable": {...}}`` (which also echoes its arguments)."""
        if not spec:
            return None
        if "dict" in spec:
            return dict(spec["dict"])
        mapping = spec["callable"]
        return lambda user_id, client_id: dict(mapping, called_with=[user_id, client_id])

    @staticmethod
    def client_headers(client: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        """(extra body parameters, HTTP headers) authenticating ``client`` at the token endpoint."""
        method = client.get("token_endpoint_auth_method", "client_secret_basic")
        if method == "client_secret_basic":
            raw = "{}:{}".format(client["client_id"], client["client_secret"]).encode()
            return {}, {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if method == "client_secret_post":
            return {"client_id": client["client_id"],
                    "client_secret": client["client_secret"]}, {}
        return {"client_id": client["client_id"]}, {}

    def token_request(self, provider: Any, client: dict[str, Any], params: dict[str, str],
                      extra: Any = None) -> tuple[Outcome, dict[str, Any]]:
        """(observable outcome, raw response) of a token request."""
        body, headers = self.client_headers(client)
        body.update(params)
        try:
            response = _as_dict(provider.handle_token_request(urlencode(body), headers, extra))
        except Exception as error:  # noqa: BLE001
            return error_outcome(error), {}
        outcome: Outcome = {
            "parameters": sorted(response),
            "token_type": response.get("token_type"),
            "expires_in": response.get("expires_in"),
        }
        if "id_token" in response:
            outcome["id_token"] = self.decode_id_token(response["id_token"], None,
                                                       response.get("access_token"))
        return outcome, response

    @staticmethod
    def userinfo(provider: Any, access_token: str) -> Outcome:
        try:
            return {"claims": _as_dict(provider.handle_userinfo_request(
                "", {"Authorization": "Bearer " + access_token}))}
        except Exception as error:  # noqa: BLE001
            return error_outcome(error)

    # -- scenario kinds -----------------------------------------------------------------------

    def flow(self, provider: Any, op: dict[str, Any], flow: dict[str, Any]) -> dict[str, Any]:
        """Authentication request -> authorize -> (token request) -> (UserInfo)."""
        result: dict[str, Any] = {}
        request = dict(flow["request"])
        if isinstance(request.get("claims"), dict):
            request["claims"] = json.dumps(request["claims"])
        try:
            authn_req = provider.parse_authentication_request(urlencode(request))
            response = _as_dict(provider.authorize(
                authn_req, flow["user"], self.extra_claims(flow.get("extra_authz"))))
        except Exception as error:  # noqa: BLE001
            result["authn"] = error_outcome(error)
            return result
        code, access_token = response.get("code"), response.get("access_token")
        authn: Outcome = {"parameters": sorted(response), "state": response.get("state"),
                          "token_type": response.get("token_type"),
                          "expires_in": response.get("expires_in")}
        if "id_token" in response:
            authn["id_token"] = self.decode_id_token(response["id_token"], code, access_token)
        result["authn"] = authn
        client = op["clients"][request["client_id"]]
        if code and flow.get("token", True):
            result["token"], tokens = self.token_request(
                provider, client, {"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": request["redirect_uri"]},
                self.extra_claims(flow.get("extra_token")))
            access_token = tokens.get("access_token", access_token)
            if flow.get("replay"):
                result["replay"], _ = self.token_request(
                    provider, client, {"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": request["redirect_uri"]})
            if tokens.get("refresh_token") and flow.get("refresh"):
                result["refresh"], _ = self.token_request(
                    provider, client, {"grant_type": "refresh_token",
                                       "refresh_token": tokens["refresh_token"]})
        if access_token and flow.get("userinfo", True):
            result["userinfo"] = self.userinfo(provider, access_token)
        return result

    def run_flows(self, scenario: dict[str, Any]) -> Any:
        provider = self.provider(scenario["op"])
        return [self.flow(provider, scenario["op"], flow) for flow in scenario["flows"]]

    def run_discovery(self, scenario: dict[str, Any]) -> Any:
        try:
            provider = self.provider(scenario["op"])
        except Exception as error:  # noqa: BLE001
            return {"construction": error_outcome(error)}
        return {"configuration": _as_dict(provider.provider_configuration)}

    def run_jwks(self, scenario: dict[str, Any]) -> Any:
        provider = self.provider(scenario["op"])
        flows = [self.flow(provider, scenario["op"], flow) for flow in scenario.get("flows", [])]
        return {"jwks": json.loads(json.dumps(provider.jwks)), "flows": flows}

    def run_registration(self, scenario: dict[str, Any]) -> Any:
        op = scenario["op"]
        provider = self.provider(op)
        results = []
        for request in scenario["requests"]:
            body = request if isinstance(request, str) else json.dumps(request)
            try:
                response = _as_dict(provider.handle_client_registration_request(body))
            except Exception as error:  # noqa: BLE001
                results.append({"registration": error_outcome(error)})
                continue
            entry: dict[str, Any] = {"registration": {"response": response}}
            client_id = response["client_id"]
            stored = dict(provider.clients[client_id])
            entry["stored_response_types"] = stored.get("response_types")
            # the registered client can authenticate and complete a flow
            if scenario.get("flow") and response.get("redirect_uris"):
                # the first in a fixed order (pyop 3 answers them in set order)
                response_type = sorted(" ".join(sorted(value.split()))
                                       for value in response.get("response_types") or ["code"])[0]
                credentials = {"client_id": client_id,
                               "client_secret": response.get("client_secret")}
                op_for_client = dict(op, clients={client_id: dict(stored, **credentials)})
                flow = {"user": scenario["flow"]["user"], "request": {
                    "response_type": response_type, "client_id": client_id, "scope": "openid",
                    "redirect_uri": response["redirect_uris"][0], "nonce": "n-0S6_WzA2Mj",
                    "state": "af0ifjsldkj"}}
                entry["flow"] = self.flow(provider, op_for_client, flow)
            results.append(entry)
        return results

    def run_logout(self, scenario: dict[str, Any]) -> Any:
        """Logout of one user: which of its codes and tokens still work, and the other user's."""
        op = scenario["op"]
        provider = self.provider(op)
        client = op["clients"][scenario["client_id"]]
        redirect_uri = client["redirect_uris"][0]

        def authorize(user: str) -> dict[str, Any]:
            request = {"response_type": "code", "client_id": client["client_id"],
                       "redirect_uri": redirect_uri, "scope": "openid email",
                       "nonce": "nonce"}
            authn_req = provider.parse_authentication_request(urlencode(request))
            return _as_dict(provider.authorize(authn_req, user))

        def exchange(code: str) -> tuple[Outcome, dict[str, Any]]:
            return self.token_request(provider, client, {
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

        def refresh(refresh_token: Optional[str]) -> Outcome:
            if not refresh_token:
                return {"refresh_token": None}
            return self.token_request(provider, client, {
                "grant_type": "refresh_token", "refresh_token": refresh_token})[0]

        user, other = scenario["user"], scenario["other_user"]
        _, tokens = exchange(authorize(user)["code"])
        unused_code = authorize(user)["code"]
        _, other_tokens = exchange(authorize(other)["code"])
        sub = self.decode_id_token(tokens["id_token"])["claims"]["sub"]
        try:
            if scenario.get("by") == "id_token_hint":
                from oic.oic.message import EndSessionRequest

                provider.logout_user(end_session_request=EndSessionRequest(
                    id_token_hint=tokens["id_token"]))
            else:
                provider.logout_user(sub)
            logout: Outcome = {"ok": True}
        except Exception as error:  # noqa: BLE001
            logout = error_outcome(error)
        return {
            "sub_before_logout": sub,
            "logout": logout,
            "access_token_after": self.userinfo(provider, tokens["access_token"]),
            "unused_code_after": exchange(unused_code)[0],
            "refresh_after": refresh(tokens.get("refresh_token")),
            "other_user_access_token_after": self.userinfo(provider,
                                                           other_tokens["access_token"]),
            "new_login_after": exchange(authorize(user)["code"])[0],
        }

    def run(self, scenarios: list[dict[str, Any]]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for scenario in scenarios:
            handler = getattr(self, "run_" + scenario["kind"])
            try:
                results[scenario["id"]] = handler(scenario)
            except Exception as error:  # noqa: BLE001 - a crash is a result too
                results[scenario["id"]] = {"crash": error_outcome(error),
                                           "traceback": traceback.format_exc()[-2000:]}
        return results


def main() -> None:
    payload = json.load(sys.stdin)
    now = payload["now"]
    import time

    time.time = lambda: float(now)  # pyop 3 reads the clock through time.time() only
    results = Runner(payload["key_pem"]).run(payload["scenarios"])
    json.dump({"results": results}, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
