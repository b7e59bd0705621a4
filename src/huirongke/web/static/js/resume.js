// Coming back after signing in: the screen the user was sent away from (a deep link opened signed
// out, or a session that expired) and, after an expiry, what they had typed on it.
// Kept in sessionStorage (this tab only, gone when it closes). Never kept: passwords, SMS codes,
// files, and fields marked data-private (an ID number).

const NEXT = 'hrk.resume.next';
const FORM = 'hrk.resume.form';
const RESTORE_FOR_MS = 15_000; // a screen that loads slower than this starts empty

function read(key) {
  try {
    return window.sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    if (value === null) window.sessionStorage.removeItem(key);
    else window.sessionStorage.setItem(key, value);
  } catch {
    /* storage unavailable: the user lands on 我的 with empty forms */
  }
}

/** Remember `path` as the screen to open after signing in. */
export function rememberReturn(path) {
  if (path && path.startsWith('/') && !path.startsWith('/login')) write(NEXT, path);
}

/** The screen to open after signing in (once), or null. */
export function takeReturn() {
  const path = read(NEXT);
  write(NEXT, null);
  return path && path.startsWith('/') ? path : null;
}

/** Forget both (signing out on purpose). */
export function clearResume() {
  write(NEXT, null);
  write(FORM, null);
}

function kept(el) {
  if (!el.id || el.disabled || el.readOnly || el.dataset.private !== undefined) return false;
  if (el.closest('[data-private]')) return false;
  const type = (el.type || '').toLowerCase();
  if (['password', 'file', 'hidden', 'submit', 'button'].includes(type)) return false;
  return el.autocomplete !== 'one-time-code';
}

/** Save the values of the fields on the current screen for `path`, tagged with whose they are.
 *  Returns true when something was kept. */
export function saveForms(path, userId = null) {
  const app = document.getElementById('app');
  if (!app) return false;
  const fields = {};
  app.querySelectorAll('input, textarea, select').forEach((el) => {
    if (!kept(el)) return;
    if (el.type === 'checkbox' || el.type === 'radio') fields[el.id] = { checked: el.checked };
    else if (el.value) fields[el.id] = { value: el.value };
  });
  const any = Object.keys(fields).length > 0;
  write(FORM, any ? JSON.stringify({ path, userId, fields }) : null);
  return any;
}

function fill(el, saved) {
  if ('checked' in saved && (el.type === 'checkbox' || el.type === 'radio')) el.checked = saved.checked;
  else if ('value' in saved) el.value = saved.value;
  el.dispatchEvent(new Event('input', { bubbles: true }));
  el.dispatchEvent(new Event('change', { bubbles: true }));
}

/**
 * Put the saved values back into the screen at `path` once its fields exist (screens load their
 * data first). Only for the same user (a different account signing in on this browser gets
 * nothing). Returns true when there was something to restore.
 */
export function restoreForms(path, userId = null) {
  let saved = null;
  try {
    saved = JSON.parse(read(FORM) || 'null');
  } catch {
    saved = null;
  }
  write(FORM, null);
  if (!saved || saved.path !== path || !saved.fields) return false;
  if (saved.userId && userId && saved.userId !== userId) return false;
  const app = document.getElementById('app');
  const left = new Map(Object.entries(saved.fields));
  const started = Date.now();
  const attempt = () => {
    for (const [id, value] of left) {
      const el = document.getElementById(id);
      if (el && app.contains(el)) {
        fill(el, value);
        left.delete(id);
      }
    }
    return left.size === 0;
  };
  if (attempt()) return true;
  const observer = new MutationObserver(() => {
    const here = window.location.hash.replace(/^#/, '') === path;
    if (attempt() || !here || Date.now() - started > RESTORE_FOR_MS) observer.disconnect();
  });
  observer.observe(app, { childList: true, subtree: true });
  return true;
}
