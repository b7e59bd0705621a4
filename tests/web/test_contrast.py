"""WCAG AA contrast of app.css, read from the stylesheet itself: every text colour against the
background it is drawn on (4.5:1, or 3:1 for large text), and the borders that identify a form
control (3:1). Custom properties are resolved from :root, so changing a variable is checked too.

A rule that sets a colour and a background is checked as that pair; a rule that sets only a colour
is drawn on the page and on cards (and on any background a rule sets for the same selector), so it is
checked against each. Disabled controls are exempt (WCAG 1.4.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from huirongke.web.routes import STATIC_DIR

CSS = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
NAMED = {"white": "#ffffff", "black": "#000000"}
EXEMPT = (":disabled", "[disabled]", '[aria-disabled="true"]', ".is-disabled", "::selection")
COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}\b|rgba?\([^)]*\)")
#: Translucent fills drawn on a known ground (the lightest stop of the "我的" header).
CONTEXT = {".badge--light": "#2f6fde"}
#: Icons and marks, not text: 3:1 (WCAG 1.4.11).
ICON = re.compile(r"icon|arrow|chevron")
#: A form control itself (not a pseudo-element, row or label around it): its last simple selector.
CONTROL = re.compile(
    r"(?:^|[\s>+~])(?:input|textarea|select|\.checkbox|\.radio|\.switch)(?:[:\[][^\s:]*[^\s]*)?$"
)


@dataclass(frozen=True)
class Rule:
    selector: str
    decls: dict[str, str]


def rules(css: str) -> list[Rule]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    out = []
    for m in re.finditer(r"([^{}]+)\{([^{}]*)\}", css):
        selector = " ".join(m.group(1).split())
        if selector.startswith("@") or re.fullmatch(r"[\d.%, fromto]+", selector):  # @font-face, keyframes
            continue
        decls = {}
        for part in m.group(2).split(";"):
            name, sep, value = part.partition(":")
            if sep:
                decls[name.strip().lower()] = " ".join(value.split())
        out.append(Rule(selector, decls))
    return out


RULES = rules(CSS)
ROOT = next(r for r in RULES if r.selector == ":root").decls


def resolve(value: str, depth: int = 0) -> str:
    def sub(m: re.Match[str]) -> str:
        name, fallback = m.group(1), m.group(2)
        found = ROOT.get(name)
        return resolve(found if found is not None else (fallback or "").strip(), depth + 1)

    return re.sub(r"var\(\s*(--[\w-]+)\s*(?:,([^)]*))?\)", sub, value) if depth < 10 else value


def rgba(value: str) -> tuple[float, float, float, float] | None:
    """The first colour in a value (`#1f2329`, `rgba(…)`, `white`), or None (gradients, images,
    transparent, inherit, currentColor)."""
    value = resolve(value).lower()
    if "gradient" in value or "url(" in value:
        return None
    m = re.search(r"#([0-9a-f]{3,8})\b", value)
    if m:
        h = m.group(1)
        if len(h) in (3, 4):
            h = "".join(c * 2 for c in h)
        a = int(h[6:8], 16) / 255 if len(h) == 8 else 1.0
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), a
    m = re.search(r"rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:[,\s/]+([\d.]+%?))?\s*\)", value)
    if m:
        alpha = m.group(4) or "1"
        a = float(alpha[:-1]) / 100 if alpha.endswith("%") else float(alpha)
        return float(m.group(1)), float(m.group(2)), float(m.group(3)), a
    for name, hexa in NAMED.items():
        if re.search(rf"\b{name}\b", value):
            return rgba(hexa)
    return None


def over(top: tuple[float, float, float, float], under: tuple[float, float, float, float]):
    a = top[3]
    r, g, b = (top[i] * a + under[i] * (1 - a) for i in range(3))
    return (r, g, b, 1.0)


def luminance(c: tuple[float, ...]) -> float:
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2])


def ratio(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def background(rule: Rule) -> list[tuple[float, float, float, float]]:
    """The colours a rule paints behind its text: one, or every opaque stop of a gradient."""
    for name in ("background-color", "background"):
        if name in rule.decls:
            value = resolve(rule.decls[name])
            if "gradient" not in value:
                found = rgba(value)
                return [found] if found is not None and found[3] > 0 else []
            stops = [rgba(m.group(0)) for m in COLOUR.finditer(value)]
            return [c for c in stops if c is not None and c[3] == 1]
    return []


def is_large(rule: Rule) -> bool:
    size = re.match(r"([\d.]+)px", rule.decls.get("font-size", ""))
    weight = rule.decls.get("font-weight", "400")
    bold = weight == "bold" or (weight.isdigit() and int(weight) >= 600)
    px = float(size.group(1)) if size else 0.0
    return px >= 24 or (bold and px >= 18.66)


PAGE = [rgba(ROOT["--card"]), rgba(ROOT["--bg"])]
WHITE = (255.0, 255.0, 255.0, 1.0)


def text_pairs() -> list[tuple[str, str, float, float]]:
    """(selector, colour, ratio, required) for every text colour the stylesheet sets."""
    by_selector: dict[str, list[tuple[float, float, float, float]]] = {}
    for r in RULES:
        for sel in r.selector.split(","):
            by_selector.setdefault(sel.strip(), []).extend(background(r))
    out = []
    for r in RULES:
        if "color" not in r.decls or any(x in r.selector for x in EXEMPT):
            continue
        fg = rgba(r.decls["color"])
        if fg is None or fg[3] == 0:
            continue
        base = rgba(CONTEXT.get(r.selector, "#ffffff"))
        assert base is not None
        own = background(r)
        if own:
            grounds = [over(b, base) for b in own]
        else:
            grounds = [g for g in PAGE if g is not None]
            for sel in r.selector.split(","):
                grounds += [over(b, WHITE) for b in by_selector.get(sel.strip(), [])]
        need = 3.0 if is_large(r) or ICON.search(r.selector) else 4.5
        for ground in grounds:
            out.append((r.selector, r.decls["color"], ratio(over(fg, ground), ground), need))
    return out


def test_the_stylesheet_is_parsed():
    assert {"--text", "--text-2", "--text-3", "--card", "--bg", "--primary"} <= set(ROOT)
    assert len(text_pairs()) > 100


TEXT_VARIABLES = ["--text", "--text-2", "--text-3", "--primary", "--danger", "--ok", "--warn"]


@pytest.mark.parametrize("name", TEXT_VARIABLES)
def test_text_variables_pass_on_cards_and_page(name):
    fg = rgba(ROOT[name])
    assert fg is not None
    for ground in ("--card", "--bg", "--primary-soft", "--danger-soft"):
        g = rgba(ROOT[ground])
        assert g is not None
        assert ratio(fg, g) >= 4.5, f"{name} on {ground}: {ratio(fg, g):.2f}:1"


def test_secondary_text_is_at_least_4_5_to_1():
    """The finding: secondary text (--text-3) was at 3.0:1 on cards."""
    assert ratio(rgba(ROOT["--text-3"]), rgba(ROOT["--card"])) >= 4.5  # type: ignore[arg-type]


def test_every_text_colour_meets_aa():
    failures = sorted(
        {f"{sel} ({colour}): {got:.2f}:1 < {need}:1" for sel, colour, got, need in text_pairs() if got < need}
    )
    assert not failures, "\n".join(failures)


def test_white_text_on_filled_buttons():
    for name in ("--primary", "--danger", "--ok"):
        g = rgba(ROOT[name])
        assert g is not None and ratio(WHITE, g) >= 4.5, name


def test_form_control_borders_are_3_to_1():
    """WCAG 1.4.11: the border that shows where a field or a box is must stand out from the card."""
    card = rgba(ROOT["--card"])
    assert card is not None
    failures, checked = [], 0
    for r in RULES:
        selectors = [x.strip() for x in r.selector.split(",")]
        if any(x in r.selector for x in EXEMPT):
            continue
        if not any(CONTROL.search(x) and "::" not in x for x in selectors):
            continue
        for name in ("border", "border-color", "border-bottom"):
            value = r.decls.get(name, "")
            if not value or value in ("0", "none"):
                continue
            colour = rgba(value) if "rgba(" not in value or "," in value else None
            if colour is None or colour[3] == 0:
                continue
            got = ratio(over(colour, card), card)
            checked += 1
            if got < 3.0:
                failures.append(f"{r.selector} {name}: {value} ({got:.2f}:1)")
    assert not failures, "\n".join(failures)
    assert checked >= 3  # the tag, case-form and age-picker fields
    ring = rgba(ROOT["--line-strong"])  # the checkbox's ring and the outline buttons' border
    assert ring is not None and card_ratio(ring) >= 3.0


def test_an_off_switch_track_is_3_to_1():
    track = next(r for r in RULES if r.selector == ".switch")
    colours = background(track)
    assert colours and card_ratio(colours[0]) >= 3.0


def test_the_checker_bites():
    """The 3.0:1 grey of the finding fails; the 4.5 threshold is exact."""
    old = rgba("#8f959e")
    assert old is not None and card_ratio(old) < 4.5
    assert rgba("var(--text-3)") == rgba(ROOT["--text-3"])
    assert round(ratio((118, 118, 118, 1), WHITE), 2) == 4.54


def card_ratio(c: tuple[float, float, float, float]) -> float:
    g = rgba(ROOT["--card"])
    assert g is not None
    return ratio(c, g)
