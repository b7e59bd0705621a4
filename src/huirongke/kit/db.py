"""Engine, sessions and the declarative base. One session per request; services only flush."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

import anyio.to_thread
from sqlalchemy import DateTime, MetaData, Table, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from huirongke.kit import txn

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table(model: type[Base]) -> Table:
    """A model's table, for Core statements on hot paths (no ORM bulk machinery)."""
    return cast(Table, model.__table__)


BUSY_TIMEOUT_S = 10


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (see _sqlite_begin), so the driver must not.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA secure_delete=ON")  # erased rows are overwritten, not left in free pages
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    """Writers take the write lock when they begin (BEGIN IMMEDIATE) and so queue in the busy
    handler; a deferred reader that later writes would instead fail at once with "database is locked"
    whenever another writer committed in between."""
    immediate = conn.get_execution_options().get(IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


IMMEDIATE = "sqlite_immediate"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, pool_size=20, max_overflow=20)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Writer:
    """The right to write to SQLite in this process, taken before a unit of work begins. Releasing is
    idempotent, so whoever ends up holding it may release it. On other databases it holds nothing."""

    __slots__ = ("_lock",)

    def __init__(self, lock: threading.Lock | None) -> None:
        self._lock = lock

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()


def _busy() -> OperationalError:
    return OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.is_sqlite = url.startswith("sqlite")
        # Writing units on SQLite begin with BEGIN IMMEDIATE (see _sqlite_begin) whenever their first
        # statement runs: opening a unit does no I/O, so it can be opened on the event loop.
        self._write_bind = self.engine.execution_options(**{IMMEDIATE: True}) if self.is_sqlite else None
        # SQLite has one writer at a time. Writers of this process queue here, and are woken the moment
        # the previous one commits, instead of sleeping in SQLite's busy handler (which backs off up to
        # 100 ms per try and made the tail of concurrent sign-ins seconds long). A plain Lock, because a
        # request may open its unit of work in one thread and commit it in another; waits are bounded
        # like busy_timeout. Other processes still meet SQLite's own busy handler.
        self._writer = threading.Lock() if self.is_sqlite else None

    def claim_writer(self) -> Writer:
        """Take the right to write, waiting up to the busy timeout (then 503 `busy`)."""
        if self._writer is None:
            return Writer(None)
        if not self._writer.acquire(timeout=BUSY_TIMEOUT_S):
            raise _busy()
        return Writer(self._writer)

    def try_claim_writer(self) -> Writer | None:
        """The right to write if nobody holds it now, else None (for writes that can be skipped)."""
        if self._writer is None:
            return Writer(None)
        return Writer(self._writer) if self._writer.acquire(False) else None

    async def claim_writer_async(self) -> Writer:
        """For requests: wait for the right to write *before* taking a request thread. A request that
        waited in a request thread while the writer ahead of it needed one to finish could starve the
        pool (the writer holds the right across the thread hops of one request)."""
        if self._writer is None or self._writer.acquire(False):
            return Writer(self._writer)
        got: list[Writer] = []

        def wait() -> Writer:
            got.append(writer := self.claim_writer())
            return writer

        try:
            return await anyio.to_thread.run_sync(wait, limiter=anyio.CapacityLimiter(1))
        except BaseException:
            for writer in got:  # cancelled while the thread waited: it ran to the end, give it back
                writer.release()
            raise

    def unit(self, *, write: bool = True, writer: Writer | None = None) -> Unit:
        """A unit of work opened without I/O (the session begins at its first statement), to be ended
        with `Unit.finish` or `Unit.abort`. A writing unit takes the right to write itself unless the
        caller already holds it (`writer`, released when the unit ends)."""
        if write and writer is None:
            writer = self.claim_writer()
        session = (
            self.sessionmaker(bind=self._write_bind) if write and self._write_bind else self.sessionmaker()
        )
        if not write:
            session.info[READ_ONLY] = True
        return Unit(session, writer)

    @contextmanager
    def session(self, *, write: bool = True, writer: Writer | None = None) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on error, then runs after-commit hooks.
        `write=False` (read-mostly requests) lets SQLite readers run beside a writer. A writing unit
        takes the right to write itself unless the caller already holds it (`writer`, released here)."""
        unit = self.unit(write=write, writer=writer)
        try:
            yield unit.session
        except BaseException:
            unit.abort()
            raise
        unit.finish()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


class Unit:
    """One unit of work: its session, and the right to write it holds (if any). Opening one does no
    I/O; `finish` and `abort` do, so a request can open its unit on the event loop and then read,
    write and commit in one worker thread (see `huirongke.accounts.deps`)."""

    __slots__ = ("_writer", "closed", "session")

    def __init__(self, session: Session, writer: Writer | None) -> None:
        self.session = session
        self._writer = writer
        self.closed = False

    def finish(self) -> None:
        """Commit (rolled back if the commit fails), close, give back the right to write, then run the
        after-commit hooks."""
        session = self.session
        try:
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            hooks: list[Callable[[], None]] = txn.take(session, _AFTER_COMMIT)
            self._close()
        for hook in hooks:
            hook()

    def abort(self) -> None:
        """Roll back, close, and give back the right to write."""
        try:
            self.session.rollback()
        finally:
            txn.take(self.session, _AFTER_COMMIT)
            self._close()

    def _close(self) -> None:
        self.closed = True
        try:
            self.session.close()
        finally:
            if self._writer is not None:
                self._writer.release()


READ_ONLY = "read_only"


class ReadOnlyUnit(RuntimeError):
    """A write in a unit of work opened to read: on SQLite it would take the write lock midway and
    fail with "database is locked" whenever another writer committed since it began."""


@event.listens_for(Session, "before_flush")
def _refuse_writes_in_reads(session: Session, _ctx: Any, _instances: Any) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise ReadOnlyUnit("a write in a read-only unit of work: declare the route WRITE")


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run `hook` once the session's transaction has committed (e.g. to enqueue a job). A hook queued
    inside a savepoint that is rolled back never runs."""
    txn.stash(session, _AFTER_COMMIT, [hook])


_AFTER_COMMIT = "after_commit"
