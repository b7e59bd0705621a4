// Boot: the policy gate runs first (only GET /api/v1/privacy/policy until the user agrees),
// then the router starts and the screens may call the rest of the API.

import { setApiHooks } from './api.js';
import { navigate, rerender } from './nav.js';
import { gateOnBoot, requirePolicyUpdate } from './policy.js';
import { route, startRouter } from './router.js';
import { forgetMe } from './state.js';
import { clearToken } from './store.js';
import { toast } from './ui.js';
import { contactView } from './views/contact.js';
import { loginView } from './views/login.js';
import { meView } from './views/me.js';
import { passwordView } from './views/password.js';
import { policyView } from './views/policy_view.js';
import { profileView } from './views/profile.js';
import { publicProfileView } from './views/public.js';
import { securityView } from './views/security.js';
import { settingsView } from './views/settings.js';

route('/login', loginView, { public: true, guest: true });
route('/policy', policyView, { public: true });
route('/contact', contactView, { public: true });
route('/me', meView);
route('/me/profile', profileView);
route('/users/:id', publicProfileView);
route('/settings', settingsView);
route('/settings/policy', policyView);
route('/settings/security', securityView);
route('/settings/password', passwordView);

let routerStarted = false;

setApiHooks({
  onUnauthorized() {
    clearToken();
    forgetMe();
    toast('登录已失效，请重新登录');
    if (routerStarted) navigate('/login', { replace: true });
  },
  onPolicyUpdate() {
    requirePolicyUpdate().then((agreed) => {
      if (routerStarted) {
        if (agreed) rerender();
        else navigate('/login', { replace: true });
      }
    });
  },
});

async function boot() {
  document.documentElement.classList.add('js');
  await gateOnBoot();
  routerStarted = true;
  startRouter(document.getElementById('app'));
}

boot();
