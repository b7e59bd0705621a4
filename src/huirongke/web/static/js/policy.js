// The privacy policy gate (P01, P24, P41).
// First visit: only GET /api/v1/privacy/policy runs until the user agrees. A newer server version
// than the one remembered shows the dialog again with the `changes` on top. A signed-in user who
// must re-agree (sign-in answer or any 428 policy_update_required) gets the same dialog, and
// agreeing POSTs /privacy/policy-agreements. On a data-rights screen (export, cancellation, cases),
// which the server serves before agreement, a signed-in user may put it off with 稍后再说;
// everywhere else the dialog stays blocking.

import { api, errorText, retryFree } from './api.js';
import { h, icon } from './dom.js';
import { formatDate } from './format.js';
import { trapFocus } from './layers.js';
import { renderMarkdown } from './markdown.js';
import { currentPath } from './nav.js';
import { routeOptions } from './router.js';
import { agreedVersion, clearToken, getToken, setAgreedVersion } from './store.js';
import { withLoading } from './ui.js';

let cached = null;

export async function loadPolicy(force = false) {
  if (!cached || force) cached = await api('/privacy/policy', { auth: false });
  return cached;
}

export function currentPolicy() {
  return cached;
}

/** True when this browser agreed to the latest version that asked for agreement, or a later one. */
export function policyAgreed() {
  const agreed = agreedVersion();
  return Boolean(cached) && agreed !== null && agreed >= cached.consent_version;
}

/** Version, date and the rendered text: shared by the dialog and the 隐私政策 screen. */
export function policyDocument(policy) {
  return h(
    'article',
    { class: 'policy-doc' },
    h(
      'p',
      { class: 'policy-meta' },
      h('span', { class: 'pill' }, `第 ${policy.version} 版`),
      ` 发布日期 ${formatDate(policy.published_at)}`,
    ),
    h('div', { class: 'md' }, renderMarkdown(policy.text)),
  );
}

/** True for a signed-in user on a rights screen: the only place agreeing may wait. */
export function mayPutOffAgreement() {
  return Boolean(getToken()) && Boolean(routeOptions(currentPath()).rights);
}

function overlayRoot() {
  return document.getElementById('overlay-root');
}

function setAppInert(value) {
  const app = document.getElementById('app');
  if (app) app.inert = value;
}

/**
 * The full-screen policy dialog. onAgree runs (with the button busy) before it closes; if it
 * throws, its message shows in the dialog and the dialog stays. Resolves 'agree' or 'disagree'
 * (or 'later' when allowLater offered 稍后再说 and the user chose it).
 */
export function showPolicyDialog(policy, { showChanges = false, onAgree = null, allowLater = false } = {}) {
  return new Promise((resolve) => {
    const error = h('p', { class: 'form-alert', role: 'alert', hidden: true });
    const disagree = h('button', { type: 'button', class: 'btn btn--ghost', id: 'policy-disagree' }, '不同意');
    const agree = h('button', { type: 'button', class: 'btn btn--primary', id: 'policy-agree' }, '同意并继续');
    const later = allowLater
      ? h('button', { type: 'button', class: 'link-btn policy-later', id: 'policy-later' }, '稍后再说')
      : null;
    const laterRow = later
      ? h('p', { class: 'policy-later-row' }, '同意之前，您仍可以导出数据、注销账号或联系我们。', later)
      : null;
    const changes =
      showChanges && policy.changes
        ? h(
            'section',
            { class: 'policy-changes', 'aria-labelledby': 'policy-changes-title' },
            h('h2', { id: 'policy-changes-title' }, icon('info'), '本次更新内容'),
            h('div', { class: 'md' }, renderMarkdown(policy.changes)),
          )
        : null;
    const dialog = h(
      'div',
      {
        class: 'policy-overlay',
        role: 'dialog',
        'aria-modal': 'true',
        'aria-labelledby': 'policy-title',
        'aria-describedby': 'policy-lead',
        id: 'policy-dialog',
      },
      h(
        'div',
        { class: 'policy-sheet' },
        h(
          'header',
          { class: 'policy-head' },
          h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '汇'),
          h('h1', { id: 'policy-title', tabindex: '-1' }, showChanges ? '隐私政策已更新' : '汇容客隐私政策'),
          h(
            'p',
            { class: 'policy-lead', id: 'policy-lead' },
            showChanges
              ? '我们更新了《汇容客隐私政策》。请阅读更新内容，同意后即可继续使用。'
              : '欢迎使用汇容客！在您同意之前，我们不会收集您的任何个人信息。请仔细阅读以下政策，了解我们如何处理和保护您的信息。',
          ),
        ),
        h('div', { class: 'policy-scroll', tabindex: '0', 'aria-label': '隐私政策全文' }, changes, policyDocument(policy)),
        h('footer', { class: 'policy-actions' }, error, h('div', { class: 'policy-buttons' }, disagree, agree), laterRow),
      ),
    );
    const stopTrap = trapFocus(dialog); // blocking: no Esc
    const close = (choice) => {
      stopTrap();
      dialog.remove();
      setAppInert(false);
      resolve(choice);
    };
    disagree.addEventListener('click', () => close('disagree'));
    if (later) later.addEventListener('click', () => close('later'));
    agree.addEventListener('click', () =>
      withLoading(agree, async () => {
        error.hidden = true;
        try {
          if (onAgree) await onAgree();
          close('agree');
        } catch (err) {
          if (err && err.handled) {
            close('error');
            return;
          }
          if (err && err.code === 'policy_version_mismatch') {
            close('stale'); // a newer version was published meanwhile: show that one
            return;
          }
          error.textContent = errorText(err);
          error.hidden = false;
        }
      }),
    );
    setAppInert(true);
    overlayRoot().replaceChildren(dialog);
    dialog.querySelector('#policy-title').focus();
  });
}

/** The plain screen after 不同意. Resolves 'reread' or 'signout'. */
export function showDisagreeScreen({ signedIn = false } = {}) {
  return new Promise((resolve) => {
    const reread = h('button', { type: 'button', class: 'btn btn--primary btn--block' }, '重新阅读隐私政策');
    const signout = signedIn
      ? h('button', { type: 'button', class: 'btn btn--ghost btn--block' }, '退出登录')
      : null;
    const screen = h(
      'div',
      { class: 'policy-overlay policy-overlay--plain', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'disagree-title', id: 'policy-declined' },
      h(
        'div',
        { class: 'declined' },
        h('span', { class: 'declined-icon' }, icon('shield')),
        h('h1', { id: 'disagree-title', tabindex: '-1' }, '需要您的同意才能继续'),
        h(
          'p',
          {},
          '汇容客需要您同意《汇容客隐私政策》后才能为您提供服务。您不同意时，我们不会收集您的任何个人信息，您也无法使用汇容客的功能。',
        ),
        h('p', { class: 'muted' }, '您可以重新阅读政策后再做决定，或直接关闭本页面。'),
        h('div', { class: 'declined-actions' }, reread, signout),
      ),
    );
    const stopTrap = trapFocus(screen);
    const close = (choice) => {
      stopTrap();
      screen.remove();
      setAppInert(false);
      resolve(choice);
    };
    reread.addEventListener('click', () => close('reread'));
    if (signout) signout.addEventListener('click', () => close('signout'));
    setAppInert(true);
    overlayRoot().replaceChildren(screen);
    screen.querySelector('#disagree-title').focus();
  });
}

async function postAgreement(version) {
  await api('/privacy/policy-agreements', { method: 'POST', json: { version } });
}

async function signOutQuietly() {
  try {
    await api('/auth/sessions/current', { method: 'DELETE' });
  } catch {
    /* the token is dropped locally either way */
  }
  clearToken();
}

function policyErrorScreen(err) {
  return new Promise((resolve) => {
    const retry = h('button', { type: 'button', class: 'btn btn--primary btn--block' }, '重试');
    const screen = h(
      'div',
      { class: 'policy-overlay policy-overlay--plain', role: 'alert' },
      h(
        'div',
        { class: 'declined' },
        h('span', { class: 'declined-icon' }, icon('info')),
        h('h1', {}, '暂时无法加载隐私政策'),
        h('p', {}, retryFree(errorText(err))), // the 重试 button says the rest
        h('div', { class: 'declined-actions' }, retry),
      ),
    );
    retry.addEventListener('click', () => {
      screen.remove();
      resolve();
    });
    overlayRoot().replaceChildren(screen);
  });
}

/**
 * Boot gate: fetch the policy (the only request before agreement) and, when this browser has not
 * agreed to its version, show the dialog until the user agrees.
 */
export async function gateOnBoot() {
  for (;;) {
    let policy;
    try {
      policy = await loadPolicy(true);
    } catch (err) {
      await policyErrorScreen(err);
      continue;
    }
    const agreed = agreedVersion();
    // A version that only updated contact facts asks nobody to agree again (consent_version).
    if (agreed !== null && agreed >= policy.consent_version) return;
    const choice = await showPolicyDialog(policy, {
      showChanges: agreed !== null,
      allowLater: mayPutOffAgreement(),
      onAgree: async () => {
        // A signed-in user's agreement is recorded on the server too.
        if (getToken()) await postAgreement(policy.version);
        setAgreedVersion(policy.version);
      },
    });
    if (choice === 'agree' || choice === 'later') return;
    if (choice === 'disagree') {
      await showDisagreeScreen({ signedIn: Boolean(getToken()) }).then(async (next) => {
        if (next === 'signout') await signOutQuietly();
      });
    }
  }
}

let updating = null;

/**
 * The signed-in user must agree to the current version (sign-in said policy_update_required, or
 * an API call answered 428). Resolves true once agreed, false if the user signed out instead,
 * null if they put it off (稍后再说, offered on rights screens only).
 */
export function requirePolicyUpdate() {
  if (!updating) {
    updating = runUpdate().finally(() => {
      updating = null;
    });
  }
  return updating;
}

async function runUpdate() {
  for (;;) {
    let policy;
    try {
      policy = await loadPolicy(true);
    } catch (err) {
      await policyErrorScreen(err);
      continue;
    }
    const choice = await showPolicyDialog(policy, {
      showChanges: true,
      allowLater: mayPutOffAgreement(),
      onAgree: async () => {
        await postAgreement(policy.version);
        setAgreedVersion(policy.version);
      },
    });
    if (choice === 'agree') return true;
    if (choice === 'later') return null;
    if (choice === 'stale') continue;
    if (choice === 'error') return false; // 401 while agreeing: the global handler signs out
    const next = await showDisagreeScreen({ signedIn: true });
    if (next === 'signout') {
      await signOutQuietly();
      return false;
    }
  }
}
