// 授权管理 (R02–R04): one switch per purpose that needs consent. Granting and withdrawing are both
// a single tap (PUT /privacy/consents/{purpose}); withdrawal stops the processing and deletes what
// was held only for that purpose. Below, the OS permissions the app reported, read-only (R03).

import { api, errorText } from '../api.js';
import { h, icon } from '../dom.js';
import { formatDateTime } from '../format.js';
import { card, loadInto, page, toast } from '../ui.js';

const BASIS = {
  consent: '基于您的同意',
  separate_consent: '需要您单独同意',
};

const PERMISSION_STATE = {
  unknown: ['未询问', 'muted'],
  granted: ['已允许', 'ok'],
  denied: ['已拒绝', 'bad'],
  revoked: ['已关闭', 'pending'],
};

function changedText(c) {
  if (!c.updated_at) return '从未授权';
  return `${c.granted ? '授权于' : '撤回于'} ${formatDateTime(c.updated_at)}`;
}

function consentRow(c) {
  const key = c.purpose;
  const input = h('input', {
    type: 'checkbox',
    role: 'switch',
    class: 'switch',
    id: `consent-${key}`,
    name: key,
    checked: Boolean(c.granted),
    'aria-labelledby': `consent-${key}-title`,
    'aria-describedby': `consent-${key}-desc consent-${key}-meta`,
  });
  const meta = h('span', { class: 'switch-meta', id: `consent-${key}-meta` }, changedText(c));
  const row = h(
    'label',
    { class: 'switch-row', for: input.id, dataset: { purpose: key } },
    h(
      'span',
      { class: 'switch-text' },
      h(
        'span',
        { class: 'switch-title' },
        h('span', { id: `consent-${key}-title` }, c.label),
        h('span', { class: 'basis-tag' }, BASIS[c.basis] || c.basis),
      ),
      h('span', { class: 'switch-desc', id: `consent-${key}-desc` }, c.description),
      meta,
    ),
    input,
  );
  input.addEventListener('change', async () => {
    const value = input.checked;
    input.disabled = true;
    row.classList.add('is-busy');
    try {
      const next = await api(`/privacy/consents/${encodeURIComponent(key)}`, { method: 'PUT', json: { granted: value } });
      input.checked = Boolean(next.granted);
      meta.textContent = changedText(next);
      if (next.granted) toast(`已授权“${next.label}”`, 'success');
      else toast(`已撤回“${next.label}”：相关处理已停止，仅为此用途保存的信息已删除`, 'success', 4000);
    } catch (err) {
      input.checked = !value;
      if (!err.handled) toast(errorText(err), 'error');
    } finally {
      input.disabled = false;
      row.classList.remove('is-busy');
    }
  });
  return row;
}

function permissionRow(p) {
  const [label, tone] = PERMISSION_STATE[p.state] || [p.state, 'muted'];
  let sub = '需要时会先询问您';
  if (p.state === 'granted') sub = '您已允许，可随时在系统设置中关闭';
  else if (!p.may_ask && p.ask_after) sub = `您已拒绝，${formatDateTime(p.ask_after)} 前不会再次询问`;
  else if (p.state === 'denied' || p.state === 'revoked') sub = '下次使用相关功能时会再询问您';
  return h(
    'li',
    { class: 'perm', dataset: { permission: p.permission } },
    h('span', { class: 'perm-text' }, h('span', { class: 'perm-title' }, p.label), h('span', { class: 'perm-sub' }, sub)),
    h('span', { class: `badge badge--${tone}` }, label),
  );
}

export function consentsView() {
  const { el, body } = page({ title: '授权管理', back: '/settings/security' });
  loadInto(
    body,
    async () => {
      const [consents, permissions] = await Promise.all([api('/privacy/consents'), api('/privacy/permissions')]);
      return { consents, permissions };
    },
    ({ consents, permissions }) => [
      card(
        '个人信息授权',
        h('p', { class: 'card-note' }, '以下用途需要您的同意。开启或关闭都只需点一下；关闭即撤回同意，我们立即停止相应处理，并删除仅为该用途保存的信息。'),
        h('div', { class: 'switch-list', id: 'consent-list' }, consents.map(consentRow)),
      ),
      h('p', { class: 'footnote footnote--left' }, '注册登录、保障运行和安全所必需的处理不依赖您的同意，不在此列出；如不希望继续，您可以注销账号。'),
      card(
        '系统权限',
        h(
          'p',
          { class: 'notice notice--plain' },
          icon('info'),
          h('span', {}, '汇容客只在您使用需要某项权限的功能时才会申请。您拒绝后，48 小时内不会再次询问。权限可随时在手机系统设置中更改。'),
        ),
        h('ul', { class: 'perm-list', id: 'permission-list' }, permissions.map(permissionRow)),
      ),
    ],
  );
  return el;
}
