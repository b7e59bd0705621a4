// Hash navigation without imports, so every module can navigate without import cycles.

let renderer = () => {};

export function setRenderer(fn) {
  renderer = fn;
}

export function currentPath() {
  const path = window.location.hash.replace(/^#/, '');
  return path.startsWith('/') ? path : '/';
}

export function navigate(path, { replace = false } = {}) {
  const target = `#${path}`;
  if (window.location.hash === target) {
    renderer();
  } else if (replace) {
    window.history.replaceState(null, '', target);
    renderer();
  } else {
    window.location.hash = target; // the hashchange listener renders
  }
}

export function rerender() {
  renderer();
}
