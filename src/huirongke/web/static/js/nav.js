// Hash navigation without imports, so every module can navigate without import cycles.
//
// Every history entry the app makes carries its depth in history.state (`hrk`: 0 for the first
// screen of this visit, +1 per in-app step), so the in-app ← knows whether going back stays in
// the app (history.back(), exactly what the phone's back button does) or would leave the site
// (then it replaces the entry with the parent screen instead). Links (<a href="#/…">) create
// their entries themselves; the first hashchange on such an entry stamps it.

let renderer = () => {};
let depth = 0;

export function setRenderer(fn) {
  renderer = fn;
}

export function currentPath() {
  const path = window.location.hash.replace(/^#/, '');
  return path.startsWith('/') ? path : '/';
}

function stateDepth() {
  const s = window.history.state;
  return s && Number.isInteger(s.hrk) ? s.hrk : null;
}

function stamp(value) {
  depth = value;
  window.history.replaceState({ ...(window.history.state || {}), hrk: value }, '');
}

/**
 * Called by the router before each render: an entry without a depth is a new one (a link was
 * followed, or the visit starts), one step deeper than the screen it came from.
 */
export function syncDepth({ initial = false } = {}) {
  const known = stateDepth();
  if (known !== null) depth = known;
  else stamp(initial ? 0 : depth + 1);
}

/** True when the entry before this one is a screen of this app, in this visit. */
export function hasInAppPrevious() {
  return depth > 0;
}

export function navigate(path, { replace = false } = {}) {
  const target = `#${path}`;
  if (window.location.hash === target) {
    renderer();
  } else if (replace) {
    window.history.replaceState({ hrk: depth }, '', target);
    renderer();
  } else {
    window.history.pushState({ hrk: depth + 1 }, '', target);
    depth += 1;
    renderer();
  }
}

/** The in-app ←: back through history while that stays in the app, else up to `parent`. */
export function goBack(parent = '/me') {
  if (hasInAppPrevious()) window.history.back();
  else navigate(parent, { replace: true });
}

export function rerender() {
  renderer();
}
