"""Third parties (P14, P25, R01): the providers configured in this process that send personal data out.

Nothing here is written by hand: every provider class declares its own facts
(`kit.thirdparty.ThirdPartyFacts`, or `None` when it is first-party), and the sharing list is the
declarations of the provider objects the running `AppContext` actually holds. A provider that is not
configured, or not built, is therefore never listed. The data-location check reads the same
declarations (a provider's `region` is the region it declares).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from huirongke.config import Settings
from huirongke.kit.thirdparty import MAINLAND, ThirdPartyFacts, facts_of, region_of

__all__ = [
    "MAINLAND",
    "DataLocationError",
    "check_data_location",
    "configured_providers",
    "third_parties",
]


def configured_providers(ctx: object) -> dict[str, object]:
    """Every provider object the context holds (sms, storage, and any added later): each field whose
    value declares `third_party`, first-party or not."""
    assert dataclasses.is_dataclass(ctx) and not isinstance(ctx, type)
    found = {}
    for f in dataclasses.fields(ctx):
        value = getattr(ctx, f.name, None)
        if value is not None and hasattr(type(value), "third_party"):
            found[f.name] = value
    return found


def third_parties(ctx: object) -> list[ThirdPartyFacts]:
    """The third parties of the running process: the declarations of its configured providers."""
    out = []
    for provider in configured_providers(ctx).values():
        facts = facts_of(provider)
        if facts is not None and facts not in out:
            out.append(facts)
    return out


class DataLocationError(RuntimeError):
    pass


def check_data_location(settings: Settings, providers: Mapping[str, object | str]) -> None:
    """P14: refuse to start when data would be stored or processed outside mainland China, unless a
    cross-border purpose is declared; that purpose must be one users consent to separately.

    `providers` maps a name to a provider object (its declared region is read) or to a region."""
    from huirongke.privacy.purposes import PURPOSES

    regions = {name: p if isinstance(p, str) else region_of(p) for name, p in providers.items()}
    abroad = {name: region for name, region in regions.items() if region != MAINLAND}
    if not abroad:
        return
    purpose = PURPOSES.get(settings.cross_border_purpose or "")
    if purpose is None or purpose.basis != "separate_consent":
        names = ", ".join(sorted(abroad))
        raise DataLocationError(
            f"refusing to start: {names} would process personal data outside mainland China. "
            "Set HRK_CROSS_BORDER_PURPOSE to a declared purpose with separate consent, "
            "or use a mainland region."
        )
