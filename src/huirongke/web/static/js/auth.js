// Signing out: always drops the local token, even when the network call fails.

import { api } from './api.js';
import { navigate } from './nav.js';
import { clearResume } from './resume.js';
import { forgetMe } from './state.js';
import { clearToken } from './store.js';

/** everywhere: DELETE /me/sessions (all devices, this one included); else only this session. */
export async function signOut({ everywhere = false } = {}) {
  let ok = true;
  try {
    await api(everywhere ? '/me/sessions' : '/auth/sessions/current', { method: 'DELETE' });
  } catch (err) {
    ok = Boolean(err && err.status === 401); // already signed out on the server
  }
  clearToken();
  forgetMe();
  clearResume(); // signing out on purpose: nothing to come back to
  navigate('/login', { replace: true });
  return ok;
}
