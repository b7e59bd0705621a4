"""Who a bearer token belongs to, and the cache that answers it without the database.

Every authenticated request asks the same questions: which session and user does this token name, is
the session live, has the user agreed to the current policy (P01, P41), is the user a minor still
waiting for a guardian (P42), and which purposes has the user consented to (P05)? `load` answers
them in two queries; `IdentityCache` keeps the answer for a few seconds, and also keeps rendered
per-user views (the `/me` body) so the hottest read costs no query at all.

Correctness does not rest on the TTL: every commit that writes a row linked to a user (see
`privacy.changes`) drops that user's entries at once, in this process and, through Redis, in the
others. A load that raced with such a commit is not stored (see `mark`/`put`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import aliased

# Re-exported: the age rules live in accounts/age.py; older importers name them here.
from huirongke.accounts.age import ADULT_AGE as ADULT_AGE
from huirongke.accounts.age import age_on as age_on
from huirongke.accounts.age import birthday_from_sealed, restricted_on
from huirongke.accounts.models import AuthSession, User
from huirongke.kit.clock import china_today, utcnow
from huirongke.kit.errors import Unauthorized
from huirongke.privacy import changes
from huirongke.privacy.models import ConsentEvent, PolicyAgreement

if TYPE_CHECKING:
    from huirongke.context import AppContext

#: The tables the cached answers are read from: the identity (session, user, policy agreement,
#: consent states) and the `/me` body (the user, their real-name status, the data key that decrypts the
#: phone). Only writes to these drop entries; posts, likes, messages and the like never do.
DEPENDS_ON = (
    "users",
    "auth_sessions",
    "policy_agreements",
    "consent_events",
    "real_name_verifications",
    "data_keys",
)
#: How stale `auth_sessions.last_seen_at` may grow before a cache miss writes it again: the idle timeout
#: (`HRK_SESSION_IDLE_MINUTES`) reads it, so it is written at most once an hour per session (and at
#: least four times per idle period), never on every request.
LAST_SEEN_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Identity:
    user_id: str
    session_id: str
    session_expires_at: datetime
    policy_version: int  # the current policy version this answer was checked against
    policy_agreed: bool
    restricted: bool
    #: Purposes whose latest consent event is a grant; None until a consent-gated route first needs
    #: them (`consents`), so the routes that need none (`/me` among them) never pay for the query.
    granted: frozenset[str] | None = None
    #: When the session lapses unused (the idle timeout): checked on each cache hit, like the expiry.
    idle_until: datetime | None = None


_LOAD = (
    select(
        AuthSession.id,
        AuthSession.user_id,
        AuthSession.expires_at,
        AuthSession.revoked_at,
        AuthSession.last_seen_at,
        User.status,
        User.birthday_enc,
        User.birth_month_enc,
        User.guardian_consent_at,
        select(PolicyAgreement.id)
        # An agreement to the latest version that asked for one, or to any later version (P41, P43).
        .where(and_(PolicyAgreement.user_id == User.id, PolicyAgreement.version >= bindparam("version")))
        .exists()
        .label("agreed"),
    )
    .join(User, User.id == AuthSession.user_id)
    .where(AuthSession.token_hash == bindparam("token_hash"))
)

_LATER = aliased(ConsentEvent)
#: The latest event per purpose only (the ledger keeps every change): answered from the
#: (user_id, purpose, at) index, and a handful of rows however long the history.
_CONSENTS = select(ConsentEvent.purpose, ConsentEvent.granted).where(
    ConsentEvent.user_id == bindparam("user_id"),
    ~select(_LATER.id)
    .where(
        _LATER.user_id == ConsentEvent.user_id,
        _LATER.purpose == ConsentEvent.purpose,
        or_(_LATER.at > ConsentEvent.at, and_(_LATER.at == ConsentEvent.at, _LATER.id > ConsentEvent.id)),
    )
    .exists(),
)


def load(ctx: AppContext, token_hash: str) -> Identity:
    """Ask the database (a cache miss), remember the answer if nothing changed meanwhile."""
    cache = ctx.identities
    start = cache.mark()
    with ctx.db.session(write=False) as session:
        policy = ctx.policy.current(session)
        version = policy.version
        row = session.execute(_LOAD, {"token_hash": token_hash, "version": policy.consent_version}).first()
        if row is None:
            raise Unauthorized("登录状态无效，请重新登录", code="invalid_token")
        now = utcnow()
        if row.revoked_at is not None or row.expires_at <= now or row.status != "active":
            raise Unauthorized("登录已过期，请重新登录", code="token_expired")
        idle = timedelta(minutes=ctx.settings.session_idle_minutes)
        if now - row.last_seen_at > idle:
            raise Unauthorized("长时间未使用，登录已过期，请重新登录", code="token_expired")
        # The birthday (or declared birth month) is sealed (P17): opened only when it can still
        # restrict (no guardian consent yet).
        born = None
        if (row.birthday_enc or row.birth_month_enc) is not None and row.guardian_consent_at is None:
            cipher = ctx.keys.cipher(session, row.user_id)
            born = birthday_from_sealed(cipher, row.birthday_enc, row.birth_month_enc)
    identity = Identity(
        user_id=row.user_id,
        session_id=row.id,
        session_expires_at=row.expires_at,
        policy_version=version,
        policy_agreed=bool(row.agreed),
        idle_until=row.last_seen_at + idle,
        restricted=restricted_on(born, row.guardian_consent_at, china_today()),
    )
    if now - row.last_seen_at > min(LAST_SEEN_EVERY, idle / 4):
        # Rare (once an hour of activity), and it changes the user: nothing to cache now. Only
        # if no other writer is busy: a timestamp is not worth queueing for (the next miss retries).
        writer = ctx.db.try_claim_writer()
        if writer is None:
            return identity
        with ctx.db.session(writer=writer) as session:
            session.execute(
                update(AuthSession).where(AuthSession.id == row.id).values(last_seen_at=now),
                execution_options=changes.of(row.user_id),
            )
        return identity
    cache.put(token_hash, identity, start)
    return identity


def consents(ctx: AppContext, who: Identity) -> frozenset[str]:
    """The purposes the user has consented to: from the identity once loaded, else one query, whose
    answer is kept with every cached identity of the user until the user changes again."""
    if who.granted is not None:
        return who.granted
    cache = ctx.identities
    start = cache.mark()
    with ctx.db.session(write=False) as session:
        granted = frozenset(p for p, g in session.execute(_CONSENTS, {"user_id": who.user_id}) if g)
    cache.put_consents(who.user_id, granted, start)
    return granted


class IdentityCache:
    """token hash → Identity, and (user, view) → rendered bytes; LRU-bounded, TTL-limited, and emptied
    per user by `privacy.changes`. Thread-safe: filled from the thread pool, read on the event loop,
    emptied from whichever thread committed."""

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._tokens: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self._views: OrderedDict[str, dict[str, tuple[float, int, bytes]]] = OrderedDict()
        self._seq = 0  # bumped by every invalidation
        self._changed: dict[str, int] = {}  # user → the _seq of their last invalidation
        self._floor = 0  # loads that started before this are refused (the _changed map was reset)
        self._all = 0  # the _seq of the last invalidation of everyone
        self.hits = self.misses = 0
        changes.subscribe(self, DEPENDS_ON)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    # --- reads ---------------------------------------------------------------------------------------

    def get(self, token_hash: str, policy_version: int | None) -> Identity | None:
        if not self.enabled or policy_version is None:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._tokens.get(token_hash)
            if hit is None or hit[0] <= now or hit[1].policy_version != policy_version:
                self.misses += 1
                return None
            self._tokens.move_to_end(token_hash)
            self.hits += 1
        identity = hit[1]
        at = utcnow()
        idle = identity.idle_until is not None and identity.idle_until <= at
        if identity.session_expires_at <= at or idle:
            return None
        return identity

    def view(self, user_id: str, name: str, version: int) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            hit = self._views.get(user_id, {}).get(name)
            if hit is None or hit[0] <= now or hit[1] != version:
                return None
            self._views.move_to_end(user_id)
            return hit[2]

    # --- writes --------------------------------------------------------------------------------------

    def mark(self) -> int:
        """Call before reading what is to be cached; pass the result to `put`/`put_view`."""
        with self._lock:
            return self._seq

    def _stale(self, user_id: str, start: int) -> bool:
        return start < self._floor or start < self._all or self._changed.get(user_id, -1) > start

    def put(self, token_hash: str, identity: Identity, start: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self._stale(identity.user_id, start):
                return
            self._tokens[token_hash] = (time.monotonic() + self.ttl, identity)
            self._tokens.move_to_end(token_hash)
            self._by_user.setdefault(identity.user_id, set()).add(token_hash)
            while len(self._tokens) > self.max_entries:
                old, (_, ident) = self._tokens.popitem(last=False)
                self._forget_token(ident.user_id, old)

    def put_view(self, user_id: str, name: str, version: int, body: bytes, start: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self._stale(user_id, start):
                return
            self._views.setdefault(user_id, {})[name] = (time.monotonic() + self.ttl, version, body)
            self._views.move_to_end(user_id)
            while len(self._views) > self.max_entries:
                self._views.popitem(last=False)

    def put_consents(self, user_id: str, granted: frozenset[str], start: int) -> None:
        with self._lock:
            if self._stale(user_id, start):
                return
            for token_hash in self._by_user.get(user_id, ()):
                expires, ident = self._tokens[token_hash]
                self._tokens[token_hash] = (expires, replace(ident, granted=granted))

    def _forget_token(self, user_id: str, token_hash: str) -> None:
        tokens = self._by_user.get(user_id)
        if tokens is not None:
            tokens.discard(token_hash)
            if not tokens:
                del self._by_user[user_id]

    # --- invalidation --------------------------------------------------------------------------------

    def subjects_changed(self, ids: frozenset[str]) -> None:
        with self._lock:
            self._seq += 1
            if changes.ALL in ids:
                self._all = self._seq
                self._tokens.clear()
                self._by_user.clear()
                self._views.clear()
                return
            if len(self._changed) > self.max_entries:
                self._changed.clear()
                self._floor = self._seq
            for uid in ids:
                if uid.startswith(changes.TABLE):
                    continue
                self._changed[uid] = self._seq
                for token_hash in self._by_user.pop(uid, ()):
                    self._tokens.pop(token_hash, None)
                self._views.pop(uid, None)

    def __len__(self) -> int:
        return len(self._tokens)
