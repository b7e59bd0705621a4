"""The SMS provider interface. A provider that sends data out declares itself a third party
(`kit.thirdparty`), and so appears in the sharing list while it is configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from huirongke.kit.thirdparty import ThirdPartyFacts

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class SmsMessage:
    """One outgoing text. `phone` is E.164; `template` names the kind of message, `params` fills it."""

    phone: str
    template: str  # e.g. "login_code", "guardian_code"
    params: dict[str, str]
    text: str  # the rendered Chinese text, for providers that send free text and for the dev outbox


class SmsSendError(Exception):
    """The provider refused or could not be reached. Its message never holds the phone number."""


class SmsProvider(Protocol):
    name: str
    #: Where the provider processes data (P14): e.g. "CN-mainland".
    region: str
    #: The third-party facts it declares (the sharing list), or None for a first-party provider.
    third_party: ThirdPartyFacts | None

    def stage(self, session: Session, message: SmsMessage) -> None:
        """Inside the transaction that issues the message, before it commits: a provider may record the
        message there (the console provider's dev outbox), so the record exists exactly when the
        message does. Most providers do nothing."""
        ...

    def send(self, message: SmsMessage) -> None:
        """After the commit: hand the message to the carrier."""
        ...
