"""Per-subject data keys: created with the subject, cached briefly, destroyed on erasure."""

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


class SubjectKeyNotFound(Exception):
    """The subject has no data key: never created, or shredded."""


class SubjectKeys:
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, bytes]] = {}

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
        if hit and now - hit[0] < _CACHE_SECONDS:
            return FieldCipher(hit[1], subject_id)
        row = session.get(DataKey, subject_id)
        if row is None:
            raise SubjectKeyNotFound
        key = self.ring.unwrap(row.wrapped_key, subject_id)
        with self._lock:
            if len(self._cache) > 50_000:
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
        with self._lock:
            self._cache.pop(subject_id, None)
