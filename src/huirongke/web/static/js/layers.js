// Sheets and dialogs over a screen behave like screens of their own on a phone: opening one adds
// a history entry (same URL), so the phone's back button closes it instead of leaving the screen
// (or the site) and losing what was typed underneath. Closing one from the page (a button, Esc)
// takes its entry back out. Focus stays inside the top layer while it is open.

const stack = []; // {id, onBack}
let seq = 0;
let waiting = null; // resolves when the history.back() of a closing layer has landed

function topId() {
  const s = window.history.state;
  return s && Number.isInteger(s.layer) ? s.layer : 0;
}

window.addEventListener('popstate', () => {
  // Every layer above the entry we landed on was closed by the back button.
  const top = topId();
  while (stack.length && stack[stack.length - 1].id > top) {
    const layer = stack.pop();
    layer.onBack();
  }
  if (waiting) {
    const done = waiting;
    waiting = null;
    done();
  }
});

/**
 * Open a layer. onBack runs when the back button closes it. Returns close(): call it when the
 * page closes the layer; it resolves once the history entry is gone, so what runs next (say, a
 * navigation) starts from the screen's own entry.
 */
export function openLayer(onBack) {
  seq += 1;
  const layer = { id: seq, onBack };
  stack.push(layer);
  window.history.pushState({ ...(window.history.state || {}), layer: layer.id }, '');
  return () => closeLayer(layer);
}

function closeLayer(layer) {
  const i = stack.indexOf(layer);
  if (i === -1) return Promise.resolve(); // already closed by the back button
  stack.splice(i, 1);
  if (topId() !== layer.id) return Promise.resolve(); // its entry is not the current one
  return new Promise((resolve) => {
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      resolve();
    };
    waiting = finish;
    window.history.back();
    window.setTimeout(finish, 400); // a browser that ignores back (no entry) must not hang the page
  });
}

/** Close every open layer without touching history: a navigation replaced the screen under them. */
export function dropLayers() {
  while (stack.length) stack.pop().onBack();
}

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(container) {
  return Array.from(container.querySelectorAll(FOCUSABLE)).filter(
    (el) => !el.hidden && !el.closest('[hidden]') && el.getClientRects().length > 0,
  );
}

/**
 * Keep Tab and Shift+Tab cycling inside `container`; Esc calls onEscape when given (only where
 * closing is safe). Returns a function that stops the trap.
 */
const traps = []; // only the newest trap acts

export function trapFocus(container, { onEscape = null } = {}) {
  const me = {};
  traps.push(me);
  const onKey = (e) => {
    if (!container.isConnected || traps[traps.length - 1] !== me) return;
    if (e.key === 'Escape' && onEscape) {
      e.preventDefault();
      onEscape();
      return;
    }
    if (e.key !== 'Tab') return;
    const items = focusables(container);
    if (!items.length) {
      e.preventDefault();
      return;
    }
    const first = items[0];
    const last = items[items.length - 1];
    const active = document.activeElement;
    if (!container.contains(active) || (!items.includes(active) && e.shiftKey)) {
      e.preventDefault();
      (e.shiftKey ? last : first).focus();
    } else if (e.shiftKey && active === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && active === last) {
      e.preventDefault();
      first.focus();
    }
  };
  document.addEventListener('keydown', onKey, true);
  return () => {
    document.removeEventListener('keydown', onKey, true);
    const i = traps.indexOf(me);
    if (i !== -1) traps.splice(i, 1);
  };
}
