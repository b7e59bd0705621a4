// 隐私政策: the two lists (second-level entries), this account's 同意记录, and the current text.

import { api } from '../api.js';
import { h, icon } from '../dom.js';
import { formatDateTime } from '../format.js';
import { openLayer, trapFocus } from '../layers.js';
import { currentPolicy, loadPolicy, policyDocument } from '../policy.js';
import { getToken } from '../store.js';
import { card, cell, cellGroup, loadInto, loadingBlock, page } from '../ui.js';

const CHANNELS = {
  sign_in: '注册/登录时同意',
  app: '弹窗中同意',
  web: '网页中同意',
};

function agreementsCard(rows) {
  const list = rows.length
    ? h(
        'ul',
        { class: 'record-list', id: 'agreement-list' },
        rows
          .slice()
          .reverse()
          .map((a) =>
            h(
              'li',
              { class: 'record' },
              h('span', { class: 'record-main' }, `第 ${a.version} 版`),
              h('span', { class: 'record-sub' }, `${formatDateTime(a.agreed_at)} · ${CHANNELS[a.channel] || a.channel}`),
            ),
          ),
      )
    : h('p', { class: 'muted' }, '暂无同意记录');
  return card('同意记录', list);
}

export function policyView() {
  const signedIn = Boolean(getToken());
  const { el, body } = page({ title: '隐私政策', back: signedIn ? '/settings' : '/login' });
  loadInto(
    body,
    async () => {
      const policy = currentPolicy() || (await loadPolicy());
      const agreements = signedIn ? await api('/privacy/policy-agreements') : null;
      return { policy, agreements };
    },
    ({ policy, agreements }) => [
      cellGroup(
        cell({ href: '#/policy/collection', label: '已收集个人信息清单', iconName: 'list', id: 'entry-collection-list' }),
        cell({ href: '#/policy/sharing', label: '第三方信息共享清单', iconName: 'share', id: 'entry-sharing-list' }),
      ),
      agreements ? agreementsCard(agreements) : null,
      h('section', { class: 'card card--doc', 'aria-label': '隐私政策全文' }, policyDocument(policy)),
    ].filter(Boolean),
  );
  return el;
}

/**
 * The policy over the current screen (used from the login form so nothing typed is lost). The
 * phone's back button closes it, like its 关闭 button and Esc.
 */
export function openPolicySheet() {
  const root = document.getElementById('overlay-root');
  const app = document.getElementById('app');
  const previous = document.activeElement;
  const closeBtn = h('button', { type: 'button', class: 'navbar-back', 'aria-label': '关闭' }, icon('close'));
  const body = h('div', { class: 'sheet-body' }, loadingBlock());
  const sheet = h(
    'div',
    { class: 'policy-overlay policy-overlay--sheet', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'sheet-title', id: 'policy-sheet' },
    h('header', { class: 'navbar' }, closeBtn, h('h1', { class: 'navbar-title', id: 'sheet-title', tabindex: '-1' }, '汇容客隐私政策')),
    body,
  );
  let open = true;
  let stopTrap = () => {};
  const teardown = () => {
    if (!open) return false;
    open = false;
    stopTrap();
    sheet.remove();
    app.inert = false;
    if (previous && previous.focus && previous.isConnected) previous.focus();
    return true;
  };
  const closeEntry = openLayer(teardown); // the back button closes the sheet
  const close = () => {
    if (teardown()) closeEntry();
  };
  closeBtn.addEventListener('click', close);
  stopTrap = trapFocus(sheet, { onEscape: close });
  app.inert = true;
  root.replaceChildren(sheet);
  sheet.querySelector('#sheet-title').focus();
  Promise.resolve(currentPolicy() || loadPolicy())
    .then((policy) => body.replaceChildren(h('div', { class: 'card card--doc', tabindex: '0', 'aria-label': '隐私政策全文' }, policyDocument(policy))))
    .catch(() => body.replaceChildren(h('p', { class: 'state state--error' }, '隐私政策加载失败')));
}
