// Boot: the policy gate runs first (only GET /api/v1/privacy/policy until the user agrees),
// then the router starts and the screens may call the rest of the API. Routes marked `rights`
// (export, cancellation, cases) are served by the server before a new policy version is agreed.

import { setApiHooks } from './api.js';
import { currentPath, navigate, rerender } from './nav.js';
import { gateOnBoot, requirePolicyUpdate } from './policy.js';
import { route, startRouter } from './router.js';
import { rememberReturn, saveForms } from './resume.js';
import { forgetMe, state } from './state.js';
import { askStepUp } from './stepup.js';
import { clearToken } from './store.js';
import { toast } from './ui.js';
import { aboutView } from './views/about.js';
import { cancelView } from './views/cancel.js';
import { casesView } from './views/cases.js';
import { consentsView } from './views/consents.js';
import { contactView } from './views/contact.js';
import { exportView } from './views/export.js';
import { guardianConsentView, guardianServiceView } from './views/guardian.js';
import { collectionListView, sharingListView } from './views/lists.js';
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
route('/policy/collection', collectionListView, { public: true });
route('/policy/sharing', sharingListView, { public: true });
route('/contact', contactView, { public: true, rights: true });
route('/contact/cases', casesView, { rights: true });
route('/guardian', guardianServiceView, { public: true });
route('/me', meView);
route('/me/guardian', guardianConsentView);
route('/me/profile', profileView);
route('/users/:id', publicProfileView);
route('/settings', settingsView);
route('/settings/policy', policyView);
route('/settings/security', securityView);
route('/settings/password', passwordView);
route('/settings/consents', consentsView);
route('/settings/export', exportView, { rights: true });
route('/settings/cancel', cancelView, { rights: true });
route('/settings/about', aboutView, { public: true });

let routerStarted = false;

setApiHooks({
  onStepUp: askStepUp,
  onUnauthorized() {
    // The session ended (expired, signed out elsewhere): keep what was typed on this screen and
    // come back to it after signing in again.
    let kept = false;
    if (routerStarted) {
      const path = currentPath();
      kept = saveForms(path, state.me ? state.me.id : null);
      rememberReturn(path);
    }
    clearToken();
    forgetMe();
    toast(kept ? '登录已失效，请重新登录，您填写的内容已保留' : '登录已失效，请重新登录', 'info', kept ? 3500 : 2200);
    if (routerStarted) navigate('/login', { replace: true });
  },
  onPolicyUpdate() {
    requirePolicyUpdate().then((agreed) => {
      if (!routerStarted) return;
      if (agreed === true) rerender();
      else if (agreed === false) navigate('/login', { replace: true });
      // null: put off (稍后再说) on a rights screen, which keeps working
    });
  },
  onGuardianRequired() {
    // P42: a minor without a guardian's consent gets the screen that explains and asks for it.
    if (routerStarted && currentPath() !== '/me/guardian') navigate('/me/guardian');
  },
});

async function boot() {
  document.documentElement.classList.add('js');
  await gateOnBoot();
  routerStarted = true;
  startRouter(document.getElementById('app'));
}

boot();
