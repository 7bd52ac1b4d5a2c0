"""Login sessions of an authorization state: the grants of one session revoked at logout,
offline grants kept or revoked (OIDC Front-Channel Logout 1.0 2 and Back-Channel Logout
1.0 2.1: ``sid``; Back-Channel Logout 1.0 2.7 and OIDC Core 11: ``offline_access``), and
the index of the clients that took part in a session or hold grants of a subject
identifier, for the logout notifications (Back-Channel Logout 1.0 2.5, Front-Channel
Logout 1.0 4).

A grant record (code, access or refresh token) issued in a login session carries its
``sid``. Logging a session out writes a *session mark* (the time of the logout) under a
key derived from the ``sid``, in the store of the subject's logout marks; a grant of the
session issued at or before the mark is refused from then on, as a subject's logout mark
refuses the grants of its ``sub``. No grant is looked for: one keyed write per logout,
one more keyed read per use of a grant that has a session.

A session mark has two times: ``logged_out_at`` revokes every grant of the session issued
up to it, ``online_logged_out_at`` those without ``offline_access`` (and every
authorization code). Each only moves forward. A logout of a whole ``sub``
(:meth:`~pyop.authz_state.AuthorizationState.delete_state_for_subject_identifier`)
revokes its offline grants too, as pyop 3 did.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any, Optional

from ..exceptions import InvalidSubjectIdentifier
from ..storage import StorageBase
from ._records import LOGOUT_MARK, MAX_GRANT_UPDATES, is_time
from ._subjects import SubjectIdentifiers

logger = logging.getLogger(__name__)

#: Prefix of the keys of session marks (a different key space from ``sub`` marks).
SESSION_MARK = "logout-session"
#: Prefix of the keys of the session index (``sid`` -> clients and their ``sub``).
SESSION_INDEX = "session-clients"
#: Prefix of the keys of the subject index (``sub`` -> clients and their sessions).
SUBJECT_INDEX = "subject-clients"
#: ``token_type`` of the index records (never an access token).
INDEX_RECORD = "logout_index"
#: Sessions remembered per client in a subject's index (the most recent ones).
MAX_SESSIONS_PER_CLIENT = 16
#: Clients remembered per session or subject (the most recent ones).
MAX_CLIENTS_PER_INDEX = 256
#: The scope value that makes a grant offline (OIDC Core 11).
OFFLINE_ACCESS = "offline_access"


def _key(prefix: str, value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}:{digest}"


def session_mark_key(session_id: str) -> str:
    """The storage key of a session's logout mark (fixed length, unlike a token value)."""
    return _key(SESSION_MARK, session_id)


def is_offline_grant(record: Mapping[str, Any]) -> bool:
    """Whether a grant record is offline: an access or refresh token whose scope has
    ``offline_access`` (OIDC Core 11). Authorization codes never are: a code not yet
    redeemed belongs to the session that is ending."""
    if record.get("token_type") == "authorization_code":
        return False
    scope = record.get("scope")
    return isinstance(scope, str) and OFFLINE_ACCESS in scope.split()


class Sessions(SubjectIdentifiers):
    """Login sessions of :class:`~pyop.authz_state.AuthorizationState`."""

    # -- logout of a session or of a subject's online grants --------------------------------

    def revoke_session(self, session_id: str, *, revoke_offline: bool = False) -> None:
        """Revoke the grants issued in one login session (codes, access tokens, refresh
        tokens), whatever their ``sub``: the grants issued with this ``session_id``
        (``authorize(..., session_id=...)``) up to now.

        :param revoke_offline: also revoke the grants with ``offline_access``. False
            (default): they survive, as Back-Channel Logout 1.0 2.7 and OIDC Core 11
            describe (access while the end-user is not logged in).
        :raises InvalidSubjectIdentifier: ``session_id`` is not a non-empty string.
        """
        if not isinstance(session_id, str) or not session_id:
            raise InvalidSubjectIdentifier("unknown session")
        now = float(self.clock())
        self._note_local_logout("sid:" + session_id, now)
        field = "logged_out_at" if revoke_offline else "online_logged_out_at"
        self._write_mark(session_mark_key(session_id), {"sid": session_id}, field, now)
        logger.info("logout: the grants of a login session were revoked")

    def _note_local_logout(self, key: str, now: float) -> None:
        """Tell this process's access token cache: a cached token that may be revoked is
        read from storage again (which then decides with the marks)."""
        local = self._local_logouts
        if local is None:
            return
        local.put(key, now)
        issued = self._issued_access_tokens
        if issued is not None and len(local) >= local.max_size:
            issued.clear()

    def _mark_lifetime(self) -> int:
        return max(self.authorization_code_lifetime, self.access_token_lifetime,
                   self.refresh_token_lifetime or 0)

    def _write_mark(self, key: str, identity: Mapping[str, Any], field: str,
                    now: float) -> None:
        """Move ``field`` of the mark ``key`` forward to ``now``, keeping its other time."""
        store = self._logout_mark_store()
        expires_at = now + self._mark_lifetime() + 1
        for _ in range(MAX_GRANT_UPDATES):
            current = store.get(key)
            if not isinstance(current, dict):
                mark = {"token_type": LOGOUT_MARK, **identity, field: now}
                if store.add(key, mark, expires_at=expires_at):
                    return
                continue
            marked: Any = current.get(field)
            if is_time(marked) and marked >= now:
                return
            updated = dict(current)
            updated[field] = now
            if store.compare_and_set(key, current, updated, expires_at=expires_at):
                return
        current = store.get(key)
        updated = dict(current) if isinstance(current, dict) else {
            "token_type": LOGOUT_MARK, **identity}
        updated[field] = now
        store.set(key, updated, expires_at=expires_at)

    # -- the checks made on every use of a grant ---------------------------------------------

    def _revoked_by_mark(self, record: Mapping[str, Any], mark: Any) -> bool:
        if not isinstance(mark, dict) or mark.get("token_type") != LOGOUT_MARK:
            return False
        at: Any = mark.get("logged_out_at")
        if is_time(at) and self._issued_by(record, float(at)):
            return True
        online: Any = mark.get("online_logged_out_at")
        return (is_time(online) and not is_offline_grant(record)
                and self._issued_by(record, float(online)))

    def _revoked_by_logout(self, record: Mapping[str, Any]) -> bool:
        """Whether the grant was revoked by a logout of its ``sub`` (one keyed read) or,
        for a grant with a session, of its session (one more)."""
        if super()._revoked_by_logout(record):
            return True
        sid = record.get("sid")
        if not isinstance(sid, str) or not isinstance(record.get("sub"), str):
            return False
        return self._revoked_by_mark(
            record, self._logout_mark_store().get(session_mark_key(sid)))

    def _locally_logged_out(self, record: Mapping[str, Any]) -> bool:
        """Whether a token answered from memory may have been revoked by a logout made
        through this process (its ``sub`` or its session): it is then read again."""
        if super()._locally_logged_out(record):
            return True
        local = self._local_logouts
        sid = record.get("sid")
        if local is None or not isinstance(sid, str):
            return False
        return self._issued_by(record, local.get("sid:" + sid))

    # -- which clients took part (for logout notifications) ----------------------------------

    def _index_store(self) -> StorageBase:
        return self._logout_mark_store()

    def record_session_client(self, client_id: str, subject_identifier: str,
                              session_id: Optional[str], lifetime: int) -> None:
        """Remember that ``client_id`` got a grant for ``subject_identifier`` (in
        ``session_id``, if any), for ``lifetime`` seconds from now: the clients a logout
        notifies (Back-Channel Logout 1.0 2.5, Front-Channel Logout 1.0 4).

        Called only for clients with a logout URI; at most two keyed writes, none when
        the records already say so."""
        now = self._now()
        expires_at = now + max(int(lifetime), self._mark_lifetime())
        store = self._index_store()

        def add_session(clients: dict[str, Any]) -> bool:
            sessions = clients.get(client_id)
            sessions = list(sessions) if isinstance(sessions, list) else []
            if session_id is None or session_id in sessions:
                if client_id in clients:
                    return False
            else:
                sessions = (sessions + [session_id])[-MAX_SESSIONS_PER_CLIENT:]
            clients.pop(client_id, None)
            clients[client_id] = sessions
            return True

        self._update_index(store, _key(SUBJECT_INDEX, subject_identifier), add_session,
                           expires_at, now)
        if session_id is not None:
            def add_client(clients: dict[str, Any]) -> bool:
                if clients.get(client_id) == subject_identifier:
                    return False
                clients.pop(client_id, None)
                clients[client_id] = subject_identifier
                return True

            self._update_index(store, _key(SESSION_INDEX, session_id), add_client,
                               expires_at, now)

    @staticmethod
    def _update_index(store: StorageBase, key: str, change: Any, expires_at: int,
                      now: int) -> None:
        for _ in range(MAX_GRANT_UPDATES):
            current = store.get(key)
            if isinstance(current, dict) and isinstance(current.get("clients"), dict):
                clients = dict(current["clients"])
                refresh = not is_time(current.get("until")) or current["until"] < expires_at - 60
                if not change(clients) and not refresh:
                    return
                while len(clients) > MAX_CLIENTS_PER_INDEX:
                    clients.pop(next(iter(clients)))
                record = {"token_type": INDEX_RECORD, "clients": clients, "until": expires_at}
                if store.compare_and_set(key, current, record, expires_at=expires_at):
                    return
                continue
            clients = {}
            change(clients)
            record = {"token_type": INDEX_RECORD, "clients": clients, "until": expires_at}
            if store.add(key, record, expires_at=expires_at):
                return
        logger.warning("the logout index could not be updated (contention)")

    def _index(self, prefix: str, value: str) -> dict[str, Any]:
        if not isinstance(value, str) or not value:
            return {}
        record = self._index_store().get(_key(prefix, value))
        if not isinstance(record, dict) or record.get("token_type") != INDEX_RECORD:
            return {}
        clients = record.get("clients")
        return dict(clients) if isinstance(clients, dict) else {}

    def session_clients(self, session_id: str) -> dict[str, str]:
        """``client_id -> sub`` of the clients with a logout URI that got a grant in a
        login session (one keyed read; empty when unknown or expired)."""
        return {client_id: sub for client_id, sub in self._index(SESSION_INDEX, session_id).items()
                if isinstance(client_id, str) and isinstance(sub, str)}

    def subject_clients(self, subject_identifier: str) -> dict[str, list[str]]:
        """``client_id -> [sid, ...]`` of the clients with a logout URI that got a grant
        for a ``sub``, with the sessions it was granted in (the most recent last; one
        keyed read)."""
        result: dict[str, list[str]] = {}
        for client_id, sessions in self._index(SUBJECT_INDEX, subject_identifier).items():
            if isinstance(client_id, str) and isinstance(sessions, list):
                result[client_id] = [s for s in sessions if isinstance(s, str)]
        return result
