"""The development SMS provider: a masked console line plus the dev outbox. Sends nothing."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from huirongke.kit.phone import mask
from huirongke.kit.sms.base import SmsMessage

log = structlog.get_logger(__name__)


class ConsoleSmsProvider:
    name = "console_sms"
    region = "CN-mainland"

    def __init__(self, outbox_writer: Callable[[SmsMessage], None] | None = None) -> None:
        self._write = outbox_writer

    def send(self, message: SmsMessage) -> None:
        # The masked number is fine for a developer's console; the code is visible in the dev outbox.
        print(f"[短信] 发往 {mask(message.phone)}：{message.text}", flush=True)
        log.info("sms_sent", provider=self.name, template=message.template)
        if self._write:
            self._write(message)
