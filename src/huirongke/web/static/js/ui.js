// Shared UI pieces: page frame, tab bar, list cells, toast, confirm modal, button loading states.

import { errorText, retryFree } from './api.js';
import { h, icon, uid } from './dom.js';
import { openLayer, trapFocus } from './layers.js';
import { goBack } from './nav.js';
import { hasRoute } from './router.js';

/* ---------- page frame ---------- */

// The tab bar is built for four tabs; a tab shows once its feature exists, i.e. once a screen is
// registered for its path. A bar with a single tab is not shown: there is nothing to switch to.
const TABS = [
  { key: 'home', path: '/home', label: '首页', icon: 'home' },
  { key: 'customers', path: '/customers', label: '客源', icon: 'users' },
  { key: 'messages', path: '/messages', label: '消息', icon: 'chat' },
  { key: 'me', path: '/me', label: '我的', icon: 'userFilled' },
];
const MIN_TABS = 2;

export function availableTabs() {
  return TABS.filter((t) => hasRoute(t.path));
}

function tabbar(active) {
  const tabs = availableTabs();
  if (tabs.length < MIN_TABS) return null;
  return h(
    'nav',
    { class: 'tabbar', 'aria-label': '主导航' },
    tabs.map((t) =>
      h(
        'a',
        {
          class: ['tabbar-item', t.key === active && 'is-active'],
          href: `#${t.path}`,
          'aria-current': t.key === active ? 'page' : null,
        },
        icon(t.icon),
        h('span', { class: 'tabbar-label' }, t.label),
      ),
    ),
  );
}

/** The in-app ←: the same as the phone's back button while that stays in the app, else up to `parent`. */
function backLink(parent) {
  const link = h('a', { class: 'navbar-back', href: `#${parent}`, 'aria-label': '返回' }, icon('back'));
  link.addEventListener('click', (e) => {
    e.preventDefault();
    goBack(parent);
  });
  return link;
}

/** A screen: top bar with optional back link, a scrolling body, and the tab bar on tab roots. */
export function page({ title, back = null, tab = null, className = '', bare = false }) {
  const body = h('main', { class: 'page-body', id: 'main' });
  const header = bare
    ? null
    : h(
        'header',
        { class: 'navbar' },
        back ? backLink(back) : null,
        h('h1', { class: 'navbar-title', tabindex: '-1' }, title),
      );
  const bar = tab ? tabbar(tab) : null;
  const el = h('div', { class: ['page', bar && 'page--tabbed', className] }, header, body, bar);
  document.title = title ? `${title} · 汇容客` : '汇容客';
  return { el, body };
}

export function loadingBlock(text = '加载中…') {
  return h('div', { class: 'state', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function errorBlock(err, retry) {
  return h(
    'div',
    { class: 'state state--error', role: 'alert' },
    h('p', {}, retry ? retryFree(errorText(err)) : errorText(err)),
    retry ? h('button', { type: 'button', class: 'btn btn--outline btn--sm', onclick: retry }, '重试') : null,
  );
}

/** Load data into a page body, showing a spinner first and a retryable error on failure. */
export async function loadInto(body, loader, build) {
  body.replaceChildren(loadingBlock());
  try {
    const data = await loader();
    body.replaceChildren(...[].concat(build(data)).filter(Boolean));
  } catch (err) {
    if (err && err.handled) return; // 401 / 428: a global handler is already on it
    body.replaceChildren(errorBlock(err, () => loadInto(body, loader, build)));
  }
}

/* ---------- building blocks ---------- */

export function card(title, ...children) {
  const id = title ? uid('card') : null;
  return h(
    'section',
    { class: 'card', 'aria-labelledby': id },
    title ? h('h2', { class: 'card-title', id }, title) : null,
    ...children,
  );
}

/** A tappable list row: icon, label, optional value, chevron. */
export function cell({ href, label, value, iconName, onclick, danger = false, id }) {
  const inner = [
    iconName ? h('span', { class: 'cell-icon' }, icon(iconName)) : null,
    h('span', { class: 'cell-label' }, label),
    value ? h('span', { class: 'cell-value' }, value) : null,
    h('span', { class: 'cell-arrow' }, icon('chevron')),
  ];
  const cls = ['cell', 'cell--link', danger && 'cell--danger'];
  if (href) return h('a', { class: cls, href, id }, inner);
  return h('button', { type: 'button', class: cls, onclick, id }, inner);
}

export function cellGroup(...cells) {
  return h('div', { class: 'cell-group' }, ...cells);
}

export function avatar(url, name, size = 'md') {
  if (url) return h('img', { class: `avatar avatar--${size}`, src: url, alt: '头像' });
  const initial = name ? Array.from(name)[0] : '';
  return h(
    'span',
    { class: `avatar avatar--${size} avatar--empty`, role: 'img', 'aria-label': '默认头像' },
    initial || icon('user'),
  );
}

/* ---------- toast ---------- */

let toastTimer = null;
export function toast(message, kind = 'info', duration = 2200) {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = message;
  el.className = `toast toast--${kind} is-visible`;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => {
    el.classList.remove('is-visible');
  }, duration);
}

/* ---------- loading buttons ---------- */

/** Disable a button (or label) while fn runs and show a spinner on it. */
export async function withLoading(button, fn) {
  if (button.classList.contains('is-loading')) return undefined;
  button.classList.add('is-loading');
  button.setAttribute('aria-busy', 'true');
  const wasDisabled = button.disabled;
  if ('disabled' in button) button.disabled = true;
  try {
    return await fn();
  } finally {
    button.classList.remove('is-loading');
    button.removeAttribute('aria-busy');
    if ('disabled' in button) button.disabled = wasDisabled;
  }
}

/* ---------- modal dialogs ---------- */

/**
 * A modal over the screen: the page behind is inert, focus stays inside, the phone's back button
 * (and Esc, when dismissible) closes it. build(close) returns the dialog box; close(value) closes
 * it and resolves the returned promise with value once its history entry is gone. Back or Esc
 * resolve `dismissValue`.
 */
export function modal(build, { dismissValue = false, dismissible = true, initialFocus = null } = {}) {
  return new Promise((resolve) => {
    const root = document.getElementById('modal-root');
    const previous = document.activeElement;
    const app = document.getElementById('app');
    const appWasInert = app ? app.inert : false;
    let closed = false;
    let stopTrap = () => {};
    let closeEntry = () => Promise.resolve();
    let backdrop = null;
    const teardown = () => {
      stopTrap();
      backdrop.remove();
      if (app) app.inert = appWasInert;
      if (previous && previous.focus && previous.isConnected) previous.focus();
    };
    const close = async (value) => {
      if (closed) return;
      closed = true;
      teardown();
      await closeEntry();
      resolve(value);
    };
    const box = build(close);
    backdrop = h('div', { class: 'modal-backdrop' }, box);
    if (dismissible) {
      backdrop.addEventListener('click', (e) => {
        if (e.target === backdrop) close(dismissValue);
      });
    }
    closeEntry = openLayer(() => {
      // the back button: its entry is already gone
      if (closed) return;
      closed = true;
      teardown();
      resolve(dismissValue);
    });
    stopTrap = trapFocus(box, { onEscape: dismissible ? () => close(dismissValue) : null });
    if (app) app.inert = true; // the page behind the dialog can't be reached
    root.append(backdrop);
    const first = initialFocus ? initialFocus() : null;
    (first || box.querySelector('button')).focus();
  });
}

/** An in-page confirm dialog. Resolves true when confirmed. */
export function confirmDialog({ title, message, confirmText = '确定', cancelText = '取消', danger = false }) {
  const titleId = uid('modal-title');
  const descId = uid('modal-desc');
  let cancel = null;
  return modal(
    (close) => {
      cancel = h('button', { type: 'button', class: 'btn btn--ghost', onclick: () => close(false) }, cancelText);
      const ok = h(
        'button',
        { type: 'button', class: ['btn', danger ? 'btn--danger' : 'btn--primary'], onclick: () => close(true) },
        confirmText,
      );
      return h(
        'div',
        { class: 'modal', role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': titleId, 'aria-describedby': descId },
        h('h2', { class: 'modal-title', id: titleId }, title),
        h('p', { class: 'modal-text', id: descId }, message),
        h('div', { class: 'modal-actions' }, cancel, ok),
      );
    },
    { initialFocus: () => cancel },
  );
}

/* ---------- forms ---------- */

/** A labelled input row. Returns {row, input, error} so callers can show field errors. */
export function field({ label, input, hint, stacked = false }) {
  const id = input.id || uid('f');
  input.id = id;
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  input.setAttribute('aria-describedby', `${id}-error`);
  const row = h(
    'div',
    { class: ['field', stacked && 'field--stacked'] },
    h('label', { class: 'field-label', for: id }, label),
    h('div', { class: 'field-control' }, input),
    hint ? h('p', { class: 'field-hint' }, hint) : null,
    error,
  );
  return { row, input, error };
}

export function setFieldError(f, message) {
  if (!f) return;
  if (message) {
    f.error.textContent = message;
    f.error.hidden = false;
    f.input.setAttribute('aria-invalid', 'true');
  } else {
    f.error.textContent = '';
    f.error.hidden = true;
    f.input.removeAttribute('aria-invalid');
  }
}

export function alertBox() {
  const el = h('p', { class: 'form-alert', role: 'alert', hidden: true });
  return {
    el,
    show(message) {
      el.textContent = message;
      el.hidden = !message;
    },
    clear() {
      el.textContent = '';
      el.hidden = true;
    },
  };
}
