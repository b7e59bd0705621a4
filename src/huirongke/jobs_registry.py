"""Imports every module that registers background jobs, so every JobQueue binds all of them."""

from huirongke.privacy import erasure, export, retention

__all__ = ["erasure", "export", "retention"]
