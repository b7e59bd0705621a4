"""Tap targets of 44 px or more on the main screens at 375 and 320 px, measured in Chromium: every
visible button, link, field, switch and checkbox (a control inside a <label> is measured as that
label, which takes its taps). Links inside running text are exempt (WCAG 2.5.5 "inline"). Icon-only
buttons must also be 44 px wide. The rendered text colours are checked for AA contrast too, against
the background actually behind them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    Server,
    Tab,
    agree_on_first_visit,
    launched_browser,
    opened_tab,
    shared_server,
    shot,
    sign_up_over_http,
)
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

MIN = 44
WIDTHS = (375, 320)
SCREENS = [
    "/me",
    "/me/profile",
    "/settings",
    "/settings/security",
    "/settings/password",
    "/settings/consents",
    "/settings/export",
    "/settings/cancel",
    "/settings/about",
    "/contact",
    "/contact/cases",
    "/policy",
]

MEASURE = """
() => {
  const SEL = 'button, a[href], input:not([type=hidden]), select, textarea, summary, '
    + '[role=button], [role=switch], [role=tab], [role=link], [role=checkbox], [role=radio]';
  const out = [];
  const seen = new Set();
  for (const el of document.querySelectorAll(SEL)) {
    const cs = getComputedStyle(el);
    if (el.closest('[hidden], [inert], [aria-hidden="true"]')) continue;
    if (cs.visibility === 'hidden' || cs.display === 'none') continue;
    const inline = el.tagName === 'A' && cs.display === 'inline' && el.parentElement
      && el.parentElement.textContent.trim().length > el.textContent.trim().length;
    if (inline) continue;  // a link in running text
    let target = el.closest('label') || el;
    if (seen.has(target)) continue;
    seen.add(target);
    let r = target.getBoundingClientRect();
    if (target === el && (r.width < 2 || r.height < 2) && el.labels && el.labels.length) {
      target = el.labels[0];  // a visually hidden input: its label is what is tapped
      r = target.getBoundingClientRect();
    }
    if (r.width === 0 && r.height === 0) continue;  // not rendered (e.g. inside display:none)
    const text = (target.innerText || '').trim();
    const icon = target.tagName !== 'INPUT' && target.tagName !== 'TEXTAREA' && target.tagName !== 'SELECT'
      && target.tagName !== 'LABEL' && !text;
    const cls = typeof target.className === 'string' ? target.className.trim() : '';
    const name = target.id ? '#' + target.id
      : target.tagName.toLowerCase() + (cls ? '.' + cls.split(/\\s+/).join('.') : '');
    out.push({ name, text: text.slice(0, 20) || target.getAttribute('aria-label') || '',
               w: Math.round(r.width * 10) / 10, h: Math.round(r.height * 10) / 10, icon });
  }
  return out;
}
"""

CONTRAST = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const blend = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const ground = (el) => {  // the solid colour behind an element (images and gradients: unknown)
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.backgroundImage && cs.backgroundImage !== 'none') return null;
      const bg = parse(cs.backgroundColor);
      if (bg && bg[3] > 0) { layers.push(bg); if (bg[3] === 1) break; }
    }
    let c = [255, 255, 255, 1];
    for (const layer of layers.reverse()) c = blend(layer, c);
    return c;
  };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const done = new Set();
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!el || done.has(el) || !node.textContent.trim()) continue;
    done.add(el);
    const off = '[hidden], [aria-hidden="true"], .sr-only, '
      + 'button:disabled, input:disabled, [aria-disabled="true"]';
    if (el.closest(off)) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || cs.display === 'none' || Number(cs.opacity) === 0) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const fg = parse(cs.color); const bg = ground(el);
    if (!fg || !bg) continue;
    const c = blend(fg, bg);
    const [hi, lo] = [lum(c), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(cs.fontSize); const bold = Number(cs.fontWeight) >= 600;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const what = `${el.tagName.toLowerCase()}.${el.className} "${node.textContent.trim().slice(0, 16)}"`;
    if (ratio < need) out.push(`${what} ${ratio.toFixed(2)}:1 < ${need}`);
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched_browser() as chromium:
        yield chromium


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    with opened_tab(browser) as t:
        yield t


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from shared_server(
        request,
        backend,
        tmp_path_factory.mktemp("tap-server"),
        HRK_SMS_RESEND_SECONDS="1",
        HRK_SMS_IP_HOURLY_LIMIT="500",
    )


def report(problems: dict[str, list[dict[str, Any]]]) -> str:
    return "\n".join(
        f"{screen}: {t['name']} '{t['text']}' {t['w']}x{t['h']}"
        for screen, ts in problems.items()
        for t in ts
    )


def small_targets(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(MEASURE)
    assert found, "no controls measured"
    return [t for t in found if t["h"] < MIN or (t["icon"] and t["w"] < MIN)]


def settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # transitions


@pytest.mark.parametrize("width", WIDTHS)
def test_login_screen_targets(server: Server, tab: Tab, tmp_path: Path, width: int) -> None:
    page = tab.page
    page.set_viewport_size({"width": width, "height": 700})
    page.goto(server.base_url + "/")
    expect(page.locator("#policy-dialog")).to_be_visible()
    settle(page)
    problems = {"policy dialog": small_targets(page)}
    page.get_by_role("button", name="同意并继续").click()
    expect(page.locator("#login-phone")).to_be_visible()
    settle(page)
    problems["login"] = small_targets(page)
    contrast = {"login": page.evaluate(CONTRAST)}
    shot(page, tmp_path, f"login-{width}.png")
    assert not any(problems.values()), report(problems)
    assert not any(contrast.values()), contrast


@pytest.mark.parametrize("width", WIDTHS)
def test_main_screens_targets(server: Server, tab: Tab, tmp_path: Path, width: int) -> None:
    page = tab.page
    page.set_viewport_size({"width": width, "height": 700})
    agree_on_first_visit(tab, server)
    token = sign_up_over_http(server, f"1380013{8200 + width}")
    page.evaluate("t => localStorage.setItem('hrk.token', t)", token)
    problems: dict[str, list[dict[str, Any]]] = {}
    contrast: dict[str, list[str]] = {}
    for path in SCREENS:
        page.goto(f"{server.base_url}/#{path}")
        expect(page.locator("#main, main").first).to_be_visible()
        settle(page)
        scroll = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert scroll[0] <= scroll[1], (path, scroll)  # nothing wider than the phone
        small = small_targets(page)
        if small:
            problems[path] = small
        low = page.evaluate(CONTRAST)
        if low:
            contrast[path] = low
        shot(page, tmp_path, f"{path.strip('/').replace('/', '-')}-{width}.png")
    assert not problems, report(problems)
    assert not contrast, contrast


def test_the_measure_finds_a_small_target(server: Server, tab: Tab) -> None:
    """The check bites: a 30 px icon button is reported."""
    page = tab.page
    page.goto(server.base_url + "/")
    expect(page.locator("#policy-dialog")).to_be_visible()
    page.evaluate(
        """() => { const b = document.createElement('button'); b.setAttribute('aria-label', 'x');
                   b.className = 'probe'; Object.assign(b.style, {display: 'block', width: '30px',
                   height: '30px', minHeight: '0', padding: '0'}); document.body.append(b); }"""
    )
    small = small_targets(page)
    assert any(t["name"] == "button.probe" for t in small), small
    page.evaluate(
        """() => { const p = document.createElement('p'); p.className = 'probe-text';
                   p.textContent = '旧的次要文字'; Object.assign(p.style, {color: '#8f959e',
                   background: '#ffffff'}); document.body.append(p); }"""
    )
    low = page.evaluate(CONTRAST)
    assert any("旧的次要文字" in x and "3.02:1" in x for x in low), low  # the old 3.0:1 grey
