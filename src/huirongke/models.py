"""Imports every domain's models so the metadata (and so the data map) is complete."""

from huirongke.accounts import models as accounts_models
from huirongke.devtools import outbox as sms_outbox
from huirongke.kit.db import Base
from huirongke.media import models as media_models
from huirongke.privacy import assessments as privacy_assessments  # noqa: F401  (R11 records)
from huirongke.privacy import models as privacy_models

__all__ = ["Base", "accounts_models", "media_models", "privacy_models", "sms_outbox"]
