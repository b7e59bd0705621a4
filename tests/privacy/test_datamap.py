"""The data map (P13, P16, R01): every column of every table says what it holds, why, for how long and
its fate on erasure, or says it is not personal; every table names how its rows reach their subject;
every purpose records its legal basis."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, String, Table

import huirongke.models  # noqa: F401  (every domain's tables)
from huirongke.config import Settings
from huirongke.models import Base
from huirongke.privacy import lists, registry
from huirongke.privacy.datamap import NOT_PERSONAL, SubjectLink, classification, pii, unclassified_columns
from huirongke.privacy.purposes import PURPOSES

ALL_TABLES = list(Base.metadata.tables.values())
BASES = {"consent", "separate_consent", "contract", "legal_obligation", "exception_security_operation"}


def test_no_column_is_unclassified():
    assert unclassified_columns(ALL_TABLES) == []


def test_the_check_does_catch_an_unclassified_column():
    md = MetaData()
    t = Table(
        "scratch",
        md,
        Column("id", String, info=NOT_PERSONAL),
        Column("email", String),
        Column("name", String, info=pii("user.profile.name", "姓名", purposes=["profile"])),
    )
    assert unclassified_columns([t]) == ["scratch.email"]


def test_the_registry_covers_every_table_in_the_metadata():
    mapped = {t.name for t in registry.tables()}
    assert mapped == set(Base.metadata.tables), set(Base.metadata.tables) ^ mapped


def test_every_table_declares_its_subject_link():
    for mapper in Base.registry.mappers:
        link = getattr(mapper.class_, "__subject__", None)
        assert isinstance(link, SubjectLink), mapper.class_.__name__
        # declared on the class itself, not inherited by accident
        assert "__subject__" in vars(mapper.class_), mapper.class_.__name__


@pytest.mark.parametrize("t", registry.tables(), ids=lambda t: t.name)
def test_subject_links_point_at_real_columns(t):
    if not t.subjects:
        # a table with no subject holds nothing personal that erasure could miss
        assert not t.is_personal
        return
    for sub in t.subjects:
        for name in t.link_columns(sub):
            assert name in t.table.columns, f"{t.name}.{name}"
            if t.name != "users":  # the root's own id is the subject itself; elsewhere it names one
                assert classification(t.table.columns[name]).personal, "a subject's link is personal data"
        for hop in sub.via:
            assert hop.table in {x.name for x in registry.tables()}, f"{t.name}: unknown hop {hop.table}"
        for name in sub.columns or ():
            assert name in {c.name for c in t.personal_columns}, f"{t.name}.{name} is not personal"
    if t.is_personal:
        assert t.link.label, f"{t.name} needs a Chinese label for exports and lists"


@pytest.mark.parametrize("t", registry.tables(), ids=lambda t: t.name)
def test_file_columns_are_declared_as_files(t):
    """One predicate (`registry.is_file`) serves export, erasure and retention: a column that names
    files by its category but is not declared a file would be erased but not exported, or the reverse."""
    for c in t.columns:
        looks_like_file = c.cls.category.endswith(".file") or ".file." in c.cls.category
        assert registry.is_file(c) == looks_like_file, f"{t.name}.{c.name}"


@pytest.mark.parametrize(
    ("table", "column"),
    [(t.name, c.name) for t in registry.tables() for c in t.columns if c.cls.personal],
)
def test_each_personal_column_is_fully_classified(table, column):
    c = next(c for c in registry.by_name(table).columns if c.name == column)
    cls = c.cls
    assert cls.category and cls.category != "none"
    assert cls.purposes, "a personal column states why it is held"
    for p in cls.purposes:
        assert p in PURPOSES, f"unknown purpose {p!r}"
    # "account", a period like "P30D", or a named period the published list can state in words
    assert (
        cls.retention == "account"
        or registry.retention_delta(cls.retention) is not None
        or bool(lists.retention_label(cls.retention, Settings()))  # raises on an unknown period
    ), cls.retention
    assert cls.erasure in ("delete", "anonymize", "keep")
    assert cls.label, "a personal column has a Chinese label for the lists and the export"
    if cls.encrypted:
        assert c.name.endswith("_enc")


@pytest.mark.parametrize("t", registry.tables(), ids=lambda t: t.name)
def test_retention_periods_can_be_enforced(t):
    """A period retention needs a timestamp to count from; otherwise the retention job never runs it."""
    periodic = [c.name for c in t.columns if c.cls.personal and registry.retention_delta(c.cls.retention)]
    if periodic:
        assert t.clock_column is not None, f"{t.name}: {periodic} have a period but no clock column"


def test_sensitive_data_is_encrypted_or_only_a_keyed_index_and_needs_separate_consent():
    for t in registry.tables():
        for c in t.columns:
            if not c.cls.sensitive:
                continue
            assert c.cls.encrypted or not c.cls.exported, f"{t.name}.{c.name} sensitive in the clear"
            for p in c.cls.purposes:
                assert PURPOSES[p].basis == "separate_consent", (
                    f"{t.name}.{c.name}: R02 needs separate consent"
                )


def test_blind_indexes_and_secrets_are_never_exported():
    """A keyed index of a phone or ID number is the server's lookup device, not the user's data: it is
    kept out of exports like the other indexes are."""
    leaking = [
        f"{t.name}.{c.name}"
        for t in registry.tables()
        for c in t.columns
        if c.cls.exported
        and (c.name.endswith("_bidx") or "索引" in c.cls.label or c.cls.category == "secret")
    ]
    assert leaking == []


def test_the_phone_number_is_held_while_the_account_exists_and_deleted_on_cancellation():
    """P15."""
    users = registry.by_name("users")
    phone_cols = [c for c in users.columns if c.cls.category == "user.contact.phone"]
    assert {c.name for c in phone_cols} == {"phone_bidx", "phone_enc"}
    for c in phone_cols:
        assert c.cls.retention == "account"
        assert c.cls.erasure == "delete"
    assert next(c for c in phone_cols if c.name == "phone_enc").cls.encrypted


def test_purposes_record_their_legal_basis():
    """P13, P28: each purpose has a basis; consent purposes are never granted by default."""
    assert PURPOSES
    for key, p in PURPOSES.items():
        assert p.key == key
        assert p.basis in BASES, p
        assert p.label and p.description and p.clause
        if p.needs_consent:
            assert p.default_granted is False, f"{key}: consent is never pre-ticked"
    assert PURPOSES["real_name"].basis == "separate_consent"
    assert PURPOSES["location"].basis == "separate_consent"


def test_purposes_catalogue_is_public(client):
    r = client.get("/api/v1/privacy/purposes")
    assert r.status_code == 200
    got = {p["purpose"]: p for p in r.json()}
    assert set(got) == set(PURPOSES)
    for key, p in PURPOSES.items():
        assert got[key]["basis"] == p.basis
        assert got[key]["needs_consent"] == p.needs_consent


@pytest.mark.parametrize("t", registry.tables(), ids=lambda t: t.name)
def test_encrypted_columns_name_whose_key_seals_them(t):
    """Export and the residue scan open sealed columns with the key of the row's first subject."""
    if any(c.cls.encrypted for c in t.columns):
        assert t.sealing_owner() is not None, t.name
