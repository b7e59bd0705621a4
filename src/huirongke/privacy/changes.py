"""Which subjects a committed transaction changed, told to the caches that depend on those tables.

A cache subscribes with the tables its answers depend on (`subscribe(listener, tables=...)`). A write
to one of those tables marks the row's subject changed (the user its data-map link names); a bulk
UPDATE/DELETE/INSERT marks the user its `subject` execution option names, or every user when it names
none. Writes to other tables mark nothing, so posting, liking or messaging never drops an identity.
The marks are announced after the outermost COMMIT (never after a rollback, and a rolled-back savepoint
takes its own marks with it: see `kit.txn`) to the listeners in this process and, when Redis is
configured, to every process that uses the same database, through one pub/sub channel. Messages carry
table names and user ids only.

Writes that bypass the session (`connection.execute`) or that the session cannot read (`text()` SQL)
would escape this. On a watched table they raise `UntrackedWrite` outside production; `make lint`
finds raw DML in `src` (see `huirongke.checks`).
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause

from huirongke.kit import txn
from huirongke.kit.crypto import sha256_hex

log = structlog.get_logger(__name__)

ALL = "*"
SUBJECT = "subject"  # execution option: the user id a bulk statement touches
TABLE = "table:"  # prefix of the marks for watched tables that hold no user's data
#: Execution option for a deliberate write outside the session's tracking (maintenance, tests); the
#: caller answers for telling the caches (`announce`).
UNTRACKED_OK = "hrk_untracked_ok"
_TRACKED = "hrk_tracked"
_SESSION = "hrk_session"
_PENDING = "changed_subjects"
_EVERYTHING = "*|*"
_watched: set[str] = set()

Listener = Callable[[frozenset[str]], None]
#: listener (an object with .subjects_changed(ids)) → the tables it depends on (None: every table
#: someone watches). Held weakly: a listener lives as long as its owner keeps it.
_subscriptions: weakref.WeakKeyDictionary[Any, frozenset[str] | None] = weakref.WeakKeyDictionary()
_interest: frozenset[str] = frozenset()  # tables whose writes are marked at all
_relay: RedisRelay | None = None


class UntrackedWrite(RuntimeError):
    """A write to a watched table that no cache would hear about."""


def _links() -> dict[str, tuple[str, ...]]:
    """table name → the columns holding its subjects' user ids (tables linked directly to users)."""
    from huirongke.privacy import registry

    return registry.user_id_columns()


def of(user_id: str) -> dict[str, str]:
    """Execution options for a bulk statement on one user's rows: caches then drop only that user."""
    return {SUBJECT: user_id}


def watch_table(name: str) -> str:
    """Announce every write to `name` (a table linked to no user, e.g. policy versions) as the mark
    this returns, to the listeners that depend on it."""
    global _interest
    _watched.add(name)
    _interest = _interest | {name}
    return TABLE + name


def subscribe(listener: Any, tables: Iterable[str] | None = None) -> None:
    """`listener.subjects_changed(ids)` is called after every commit that wrote one of `tables`; `ids`
    holds user ids, `ALL`, or `TABLE + name` for watched tables without users."""
    global _interest
    deps = None if tables is None else frozenset(tables)
    _subscriptions[listener] = deps
    if deps is not None:
        _interest = _interest | deps


def watched_tables() -> frozenset[str]:
    return _interest


def _deliverable(marks: frozenset[str], deps: frozenset[str] | None) -> frozenset[str]:
    out = set()
    for mark in marks:
        table, _, subject = mark.partition("|")
        if table != ALL and deps is not None and table not in deps:
            continue
        out.add(subject or TABLE + table)
    return frozenset(out)


def announce_local(marks: Iterable[str]) -> None:
    batch = frozenset(marks)
    if not batch:
        return
    for listener, deps in list(_subscriptions.items()):
        ids = _deliverable(batch, deps)
        if ids:
            listener.subjects_changed(ids)


def announce(marks: Iterable[str]) -> None:
    batch = frozenset(marks)
    if not batch:
        return
    announce_local(batch)
    if _relay is not None:
        _relay.publish(batch)


def mark_of(table: str, subject: str) -> str:
    """The mark for `subject` (a user id, `ALL`, or "" for a table without users) in `table`."""
    return f"{table}|{subject}"


def everything() -> frozenset[str]:
    """The mark that drops every cache entry (e.g. after missing announcements)."""
    return frozenset({_EVERYTHING})


def _mark(session: Session, marks: Iterable[str]) -> None:
    txn.stash(session, _PENDING, marks)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    interest = _interest
    links = _links()
    touched = []
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(obj, "__tablename__", "")
        if table not in interest:
            continue
        columns = links.get(table)
        if columns is None:
            touched.append(mark_of(table, ""))
            continue
        for column in columns:
            uid = getattr(obj, column, None)
            if uid is not None:
                touched.append(mark_of(table, str(uid)))
    if touched:
        _mark(session, touched)


@event.listens_for(Session, "do_orm_execute")
def _bulk(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    state.update_execution_options(**{_TRACKED: True})
    table = getattr(state.statement, "table", None)
    if table is None or table.name not in _interest:
        return
    if table.name not in _links():
        _mark(state.session, [mark_of(table.name, "")])
        return
    subject = state.execution_options.get(SUBJECT)
    _mark(state.session, [mark_of(table.name, str(subject) if subject else ALL)])


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if txn.in_savepoint(session):  # a savepoint was released; the transaction is still open
        return
    marks = txn.take(session, _PENDING)
    if marks:
        announce(marks)


@event.listens_for(Session, "after_begin")
def _after_begin(session: Session, _transaction: Any, connection: Connection) -> None:
    connection.info[_SESSION] = weakref.ref(session)


# --- writes that would escape the tracking --------------------------------------------------------

_DML = re.compile(r"^\s*(?:WITH\b.*?\)\s*)?(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE | re.DOTALL)
_TABLE_AFTER = re.compile(r"\b(?:INTO|UPDATE|FROM|REPLACE)\s+[\"`]?(\w+)", re.IGNORECASE)


def raw_write_tables(sql: str) -> set[str]:
    """The tables a raw SQL string writes to (INSERT INTO t, UPDATE t, DELETE FROM t)."""
    if not _DML.match(sql):
        return set()
    return {m.group(1).lower() for m in _TABLE_AFTER.finditer(sql)}


def guarded_tables() -> frozenset[str]:
    """Tables whose writes must go through the session: those a cache depends on."""
    return _interest


def _flushing(conn: Connection) -> bool:
    ref = conn.info.get(_SESSION)
    session = ref() if ref is not None else None
    return bool(session is not None and session._flushing)


def _check(conn: Connection, clause: Any, _multi: Any, _params: Any, options: Any) -> None:
    # Runs before every statement outside production: a query (most of them) leaves at the first test.
    if not isinstance(clause, TextClause | UpdateBase):
        return
    if options.get(UNTRACKED_OK) or conn.get_execution_options().get(UNTRACKED_OK):
        return
    guarded = guarded_tables()
    if isinstance(clause, TextClause):
        hit = raw_write_tables(clause.text) & guarded
    else:
        table = getattr(clause, "table", None)
        name = getattr(table, "name", None)
        if name not in guarded or options.get(_TRACKED) or _flushing(conn):
            return
        hit = {name}
    if hit:
        raise UntrackedWrite(
            f"write to watched table(s) {sorted(hit)} outside the session's tracking: use the ORM or a "
            "Core statement through Session.execute (with changes.of(user_id)), or pass "
            f"execution_options({UNTRACKED_OK}=True) and announce the change yourself"
        )


def guard(engine: Engine) -> None:
    """Refuse untracked writes to watched tables on this engine (development and tests)."""
    if not event.contains(engine, "before_execute", _check):
        event.listen(engine, "before_execute", _check)


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
                announce_local(everything())
                while not self._stop.is_set():
                    message = self._pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._deliver(message.get("data"))
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("subject_relay_disconnected", error_type=type(exc).__name__)
                announce_local(everything())
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
