"""Which users a committed transaction changed, told to every cache of per-user state.

A write to any table the data map links to a user (its `SubjectLink` through `user_id`) marks that user
changed; a bulk UPDATE/DELETE/INSERT on such a table marks the user its `subject` execution option names,
or everyone when it names none. The marks are announced after COMMIT (never after a rollback) to the
listeners in this process and, when Redis is configured, to every other process that uses the same
database, through one pub/sub channel. Messages carry user ids only.

Caches built on this stay exact within a process; across processes they are exact up to the pub/sub
delay, and their TTL bounds staleness when no relay is configured or Redis is unreachable.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from huirongke.kit import txn
from huirongke.kit.crypto import sha256_hex

log = structlog.get_logger(__name__)

ALL = "*"
SUBJECT = "subject"  # execution option: the user id a bulk statement touches
TABLE = "table:"  # prefix of the marks for watched tables that hold no user's data
_PENDING = "changed_subjects"
_watched: set[str] = set()

Listener = Callable[[frozenset[str]], None]
_listeners: weakref.WeakSet[Any] = weakref.WeakSet()  # objects with .subjects_changed(ids)
_relay: RedisRelay | None = None


@cache
def _links() -> dict[str, str]:
    """table name → the ORM attribute holding its subject's user id."""
    from huirongke.privacy import registry

    out = {}
    for t in registry.tables():
        if t.link.column and t.link.via == "user_id":
            out[t.name] = t.link.column
    return out


def of(user_id: str) -> dict[str, str]:
    """Execution options for a bulk statement on one user's rows: caches then drop only that user."""
    return {SUBJECT: user_id}


def watch_table(name: str) -> str:
    """Announce every write to `name` (a table linked to no user, e.g. policy versions) as the mark
    this returns, beside the user marks."""
    _watched.add(name)
    return TABLE + name


def subscribe(listener: Any) -> None:
    """`listener.subjects_changed(ids)` is called after every commit that changed users; `ids` holds
    user ids or `ALL`. Held weakly: a listener lives as long as its owner keeps it."""
    _listeners.add(listener)


def announce_local(ids: Iterable[str]) -> None:
    batch = frozenset(ids)
    if not batch:
        return
    for listener in list(_listeners):
        listener.subjects_changed(batch)


def announce(ids: Iterable[str]) -> None:
    batch = frozenset(ids)
    if not batch:
        return
    announce_local(batch)
    if _relay is not None:
        _relay.publish(batch)


def _mark(session: Session, ids: Iterable[str]) -> None:
    txn.stash(session, _PENDING, ids)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    links = _links()
    touched = []
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(obj, "__tablename__", "")
        if table in _watched:
            touched.append(TABLE + table)
        column = links.get(table)
        if column is not None:
            uid = getattr(obj, column, None)
            if uid is not None:
                touched.append(str(uid))
    if touched:
        _mark(session, touched)


@event.listens_for(Session, "do_orm_execute")
def _bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(state.statement, "table", None)
    if table is None:
        return
    if table.name in _watched:
        _mark(state.session, [TABLE + table.name])
    if table.name not in _links():
        return
    subject = state.execution_options.get(SUBJECT)
    _mark(state.session, [str(subject)] if subject else [ALL])


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if txn.in_savepoint(session):  # a savepoint was released; the transaction is still open
        return
    ids = txn.take(session, _PENDING)
    if ids:
        announce(ids)


class RedisRelay:
    """Carries the announcements between processes that share a database: one channel per database,
    so that test runs or tenants on one Redis do not hear each other."""

    def __init__(self, client: Any, database_url: str) -> None:
        self.client = client
        self.channel = f"hrk:subjects:{sha256_hex(database_url)[:16]}"
        self.origin = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pubsub: Any = None

    def publish(self, ids: frozenset[str]) -> None:
        try:
            self.client.publish(self.channel, f"{self.origin}|{','.join(sorted(ids))}")
        except Exception as exc:  # other processes fall back on their cache TTL
            log.warning("subject_relay_publish_failed", error_type=type(exc).__name__)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._listen, name="subject-relay", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(self.channel)
                # Whatever was announced while we were not listening is lost: forget everything.
                announce_local([ALL])
                while not self._stop.is_set():
                    message = self._pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._deliver(message.get("data"))
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("subject_relay_disconnected", error_type=type(exc).__name__)
                announce_local([ALL])
                self._stop.wait(1.0)
            finally:
                pubsub, self._pubsub = self._pubsub, None
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()

    def _deliver(self, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        origin, _, ids = text.partition("|")
        if origin != self.origin and ids:
            announce_local(ids.split(","))


def relay() -> RedisRelay | None:
    return _relay


def install_relay(relay: RedisRelay | None) -> None:
    """The process's relay to other processes (None: this process is alone with its database)."""
    global _relay
    _relay = relay
