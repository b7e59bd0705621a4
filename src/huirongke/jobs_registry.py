"""Imports every module that registers background jobs, so a queue and its consumer know all of them.

Imported by the composition roots only (`huirongke.app`, the CLI's `worker`), never by
`huirongke.context`: the job modules import the context themselves, and the context importing them
back was an import cycle (`tests/test_imports.py` keeps it broken).
"""

from huirongke.media import service as media
from huirongke.privacy import erasure, export, retention

__all__ = ["erasure", "export", "media", "retention"]
