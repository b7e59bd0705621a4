"""The development SMS provider: a masked console line plus the dev outbox. Sends nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from huirongke.kit.phone import mask
from huirongke.kit.sms.base import SmsMessage
from huirongke.kit.thirdparty import MAINLAND, ThirdPartyFacts

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = structlog.get_logger(__name__)


class ConsoleSmsProvider:
    name = "console_sms"
    region = MAINLAND
    #: First-party: prints on our own server and sends nothing to anyone.
    third_party: ThirdPartyFacts | None = None

    def __init__(self, outbox_row: Callable[[Session, SmsMessage], None] | None = None) -> None:
        self._record = outbox_row

    def stage(self, session: Session, message: SmsMessage) -> None:
        # In the issuing transaction: no second write (and no second wait for SQLite's writer) after it.
        if self._record:
            self._record(session, message)

    def send(self, message: SmsMessage) -> None:
        # The masked number is fine for a developer's console; the code is visible in the dev outbox.
        print(f"[短信] 发往 {mask(message.phone)}：{message.text}", flush=True)
        log.info("sms_sent", provider=self.name, template=message.template)
