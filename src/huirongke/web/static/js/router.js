// A small hash router: '#/users/:id' patterns, an auth guard, focus management on navigation.

import { dropLayers } from './layers.js';
import { currentPath, navigate, setRenderer, syncDepth } from './nav.js';
import { rememberReturn } from './resume.js';
import { getToken } from './store.js';

const routes = [];

/**
 * opts.public: reachable signed out; opts.guest: only signed out (the login screen);
 * opts.rights: a data-rights screen the server serves before the current policy is agreed, so
 * the policy-update dialog there may be put off (稍后再说).
 */
export function route(pattern, view, opts = {}) {
  const keys = [];
  const source = pattern.replace(/:([a-z]+)/g, (_, key) => {
    keys.push(key);
    return '([^/]+)';
  });
  routes.push({ regex: new RegExp(`^${source}/?$`), keys, view, opts });
}

function match(path) {
  const clean = path.split('?')[0];
  for (const r of routes) {
    const m = r.regex.exec(clean);
    if (m) {
      const params = {};
      r.keys.forEach((k, i) => {
        params[k] = decodeURIComponent(m[i + 1]);
      });
      return { route: r, params };
    }
  }
  return null;
}

/** The options of the route that serves a path ({} when none does). */
export function routeOptions(path) {
  const found = match(path);
  return found ? found.route.opts : {};
}

/** True when some route serves `path`: a feature exists once its screen is registered. */
export function hasRoute(path) {
  return match(path) !== null;
}

export function startRouter(root) {
  let first = true;
  const render = () => {
    syncDepth({ initial: first });
    const signedIn = Boolean(getToken());
    const path = currentPath();
    const found = match(path);
    if (!found) {
      navigate(signedIn ? '/me' : '/login', { replace: true });
      return;
    }
    if (!found.route.opts.public && !signedIn) {
      rememberReturn(path); // a deep link survives signing in
      navigate('/login', { replace: true });
      return;
    }
    if (found.route.opts.guest && signedIn) {
      navigate('/me', { replace: true });
      return;
    }
    dropLayers(); // a new screen: whatever was open over the old one is gone
    const el = found.route.view({ params: found.params, path });
    root.replaceChildren(el);
    window.scrollTo(0, 0);
    if (!first) {
      // Move focus to the new screen's title so screen readers announce it.
      const title = el.querySelector('h1[tabindex]');
      if (title) title.focus({ preventScroll: true });
    }
    first = false;
  };
  setRenderer(render);
  window.addEventListener('hashchange', render);
  render();
}
