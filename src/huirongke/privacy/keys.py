"""Per-subject data keys: created with the subject, cached briefly, destroyed on erasure.

The cache of unwrapped keys listens to the change announcements (`privacy.changes`), like the
identity cache: any commit touching a subject, in this process or (through the Redis relay) in
another, drops that subject's key here. Shredding a key deletes its `data_keys` row, which is such a
commit, so no process keeps using an erased subject's key after the erasure's commit; the TTL only
bounds what no announcement reaches (no Redis configured, or Redis unreachable).
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import insert
from sqlalchemy.orm import Session

from huirongke.kit.clock import utcnow
from huirongke.kit.crypto import FieldCipher, KeyRing
from huirongke.kit.db import table
from huirongke.privacy import changes
from huirongke.privacy.models import DataKey

_INSERT_KEY = insert(table(DataKey))

_CACHE_SECONDS = 60.0
_MAX_ENTRIES = 50_000


class SubjectKeyNotFound(Exception):
    """The subject has no data key: never created, or shredded."""


class SubjectKeys:
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, bytes]] = {}
        # A key read while a commit changed its subject is not kept (the read may predate a shred).
        self._seq = 0  # bumped by every announcement
        self._changed: dict[str, int] = {}  # subject → the _seq of its last announcement
        self._floor = 0  # reads that started before this are not kept (everyone changed, or reset)
        changes.subscribe(self, ("data_keys",))  # a shredded key, wherever it happened

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def holds(self, subject_id: str) -> bool:
        """Whether this process has the subject's key in memory now."""
        with self._lock:
            return subject_id in self._cache

    def create(self, session: Session, subject_id: str) -> FieldCipher:
        key, wrapped = self.ring.new_data_key(subject_id)
        session.execute(
            _INSERT_KEY,
            {"subject_id": subject_id, "wrapped_key": wrapped, "created_at": utcnow()},
            execution_options=changes.of(subject_id),
        )
        return FieldCipher(key, subject_id)

    def cipher(self, session: Session, subject_id: str) -> FieldCipher:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(subject_id)
            start = self._seq
        if hit and now - hit[0] < _CACHE_SECONDS:
            return FieldCipher(hit[1], subject_id)
        row = session.get(DataKey, subject_id)
        if row is None:
            raise SubjectKeyNotFound
        key = self.ring.unwrap(row.wrapped_key, subject_id)
        with self._lock:
            if start >= self._floor and self._changed.get(subject_id, -1) <= start:
                if len(self._cache) >= _MAX_ENTRIES:
                    self._cache.clear()
                self._cache[subject_id] = (now, key)
        return FieldCipher(key, subject_id)

    def shred(self, session: Session, subject_id: str) -> None:
        """Crypto-shredding: without the wrapped key, every ciphertext of the subject is noise."""
        row = session.get(DataKey, subject_id)
        if row is not None:
            session.delete(row)
        self.forget(subject_id)

    def forget(self, subject_id: str) -> None:
        self.subjects_changed(frozenset({subject_id}))

    def subjects_changed(self, ids: frozenset[str]) -> None:
        """`privacy.changes` listener: drop the keys of the subjects a commit touched, here or elsewhere."""
        with self._lock:
            self._seq += 1
            if changes.ALL in ids:
                self._cache.clear()
                self._changed.clear()
                self._floor = self._seq
                return
            if len(self._changed) > _MAX_ENTRIES:
                self._changed.clear()
                self._floor = self._seq
            for subject_id in ids:
                if subject_id.startswith(changes.TABLE):
                    continue
                self._cache.pop(subject_id, None)
                self._changed[subject_id] = self._seq
