"""What a provider declares about itself when it hands personal data to another company (P14, P25, R01).

Every provider class (SMS, storage, …) carries a class attribute `third_party`: a `ThirdPartyFacts`
when it sends personal data to a third party, or `None` when it is first-party (it runs on our own
servers and sends nothing out, like the console SMS provider or the local media folder). The
privacy engine builds the sharing list and the data-location check from the providers actually
configured in the running process, so a provider that is not configured, or not built, is never
listed. `kit/` knows no domain: the categories and the purpose are plain keys that the privacy
engine checks against the data map and the purposes catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

MAINLAND = "CN-mainland"


@dataclass(frozen=True)
class ThirdPartyFacts:
    """The facts the sharing list (第三方信息共享清单) shows for one recipient."""

    key: str  # stable identifier, e.g. "aliyun_sms"
    name: str  # the service, as users know it
    company: str  # the legal entity that receives the data
    region: str  # where it processes the data: MAINLAND or a country/region code
    purpose: str  # a key of the purposes catalogue
    data: tuple[str, ...]  # data-map categories it receives
    scenario: str  # when it receives them
    manner: str  # how: SDK, server-side API call, storage
    basis: str  # the legal basis, in words users read


class Provider(Protocol):
    """What the privacy engine reads from any provider object."""

    #: Where the provider processes data (P14): MAINLAND for our own servers.
    region: str
    third_party: ThirdPartyFacts | None


def facts_of(provider: object) -> ThirdPartyFacts | None:
    """The provider's declaration, or None for a first-party provider."""
    value = getattr(provider, "third_party", None)
    return value if isinstance(value, ThirdPartyFacts) else None


def region_of(provider: object) -> str:
    """Where a provider processes data: its third-party declaration wins over its own attribute."""
    facts = facts_of(provider)
    return facts.region if facts is not None else str(getattr(provider, "region", MAINLAND))
