// 账号安全和隐私设置: privacy switches (P38, P39), 授权管理 and 下载我的数据, password, sessions,
// 监护人 (users under 18, or a guardian link on record), 注销账号 (退出登录 is at the bottom of 设置).

import { api, errorText } from '../api.js';
import { signOut } from '../auth.js';
import { h, icon } from '../dom.js';
import { formatDateTime, formatRelative } from '../format.js';
import { rememberMe } from '../state.js';
import { card, cell, cellGroup, confirmDialog, loadInto, page, toast, withLoading } from '../ui.js';

const SWITCHES = [
  ['show_phone', '在个人主页展示手机号', '开启后，他人可在您的主页看到完整手机号'],
  ['show_region', '在个人主页展示地区', '开启后，他人可在您的主页看到您的地区'],
  // The same fact as the “个性化推荐” consent in 授权管理: switching it is granting or withdrawing that consent.
  ['personalized_recommendations', '个性化推荐', '默认关闭。与「授权管理」中的“个性化推荐”是同一项授权；关闭后推荐内容不再基于您的个人特征，仅为此保存的信息将被删除'],
];

function switchRow(key, title, desc, checked) {
  const input = h('input', {
    type: 'checkbox',
    role: 'switch',
    class: 'switch',
    id: `sw-${key}`,
    name: key,
    checked: Boolean(checked),
    'aria-labelledby': `sw-${key}-title`,
    'aria-describedby': `sw-${key}-desc`,
  });
  const row = h(
    'label',
    { class: 'switch-row', for: input.id },
    h(
      'span',
      { class: 'switch-text' },
      h('span', { class: 'switch-title', id: `sw-${key}-title` }, title),
      h('span', { class: 'switch-desc', id: `sw-${key}-desc` }, desc),
    ),
    input,
  );
  input.addEventListener('change', async () => {
    const value = input.checked;
    input.disabled = true;
    row.classList.add('is-busy');
    try {
      const settings = await api('/me/privacy-settings', { method: 'PATCH', json: { [key]: value } });
      input.checked = Boolean(settings[key]);
      if (key === 'personalized_recommendations' && !settings[key]) {
        toast(`已关闭“${title}”：已撤回该项授权，仅为此用途保存的信息已删除`, 'success', 4000);
      } else {
        toast(`已${settings[key] ? '开启' : '关闭'}“${title}”`, 'success');
      }
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

function sessionTitle(s) {
  if (s.device && s.device.model) return s.device.model;
  return s.method === 'password' ? '密码登录' : '验证码登录';
}

function sessionsCard(sessions, reload) {
  const items = sessions.map((s) => {
    const d = s.device || {};
    const title = sessionTitle(s);
    const os = d.os_version && d.os_version !== 'unknown' ? d.os_version : null;
    const mobile = /iOS|Android|iPhone|iPad/.test(`${os || ''} ${d.model || ''}`);
    const offline = h('button', { type: 'button', class: 'btn btn--outline btn--xs', 'aria-label': `下线 ${title}` }, '下线');
    offline.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: s.current ? '退出本机登录？' : '下线该设备？',
        message: s.current
          ? '这是您当前正在使用的设备，下线后需要重新登录。'
          : `“${title}”将退出登录，需要重新验证手机号才能再次登录。`,
        confirmText: '下线',
        danger: true,
      });
      if (!ok) return;
      if (s.current) {
        await signOut();
        toast('已退出登录');
        return;
      }
      await withLoading(offline, async () => {
        try {
          await api(`/me/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
          toast('该设备已下线', 'success');
          reload();
        } catch (err) {
          if (!err.handled) toast(errorText(err), 'error');
        }
      });
    });
    return h(
      'li',
      { class: 'session', dataset: { current: s.current ? 'true' : 'false' } },
      h('span', { class: 'session-icon' }, icon(mobile ? 'mobile' : 'monitor')),
      h(
        'span',
        { class: 'session-text' },
        h('span', { class: 'session-title' }, s.current ? h('span', { class: 'badge badge--ok' }, '本机') : null, title),
        h('span', { class: 'session-sub' }, [os, s.login_ip ? `IP ${s.login_ip}` : null].filter(Boolean).join(' · ') || '设备信息未记录'),
        h(
          'span',
          { class: 'session-sub' },
          h('time', { datetime: s.last_seen_at, title: formatDateTime(s.last_seen_at) }, `最近活跃 ${formatRelative(s.last_seen_at)}`),
        ),
      ),
      offline,
    );
  });
  const all = h('button', { type: 'button', class: 'btn btn--danger-outline btn--block', id: 'logout-all' }, '退出所有设备');
  all.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: '退出所有设备？',
      message: '所有设备上的登录（包括本机）都将失效，需要重新验证手机号才能登录。',
      confirmText: '全部退出',
      danger: true,
    });
    if (!ok) return;
    await withLoading(all, async () => {
      await signOut({ everywhere: true });
      toast('已退出所有设备');
    });
  });
  return card(
    '登录设备与会话',
    h('ul', { class: 'session-list', id: 'session-list' }, items),
    h('div', { class: 'card-actions' }, all),
  );
}

export function securityView() {
  const { el, body } = page({ title: '账号安全和隐私设置', back: '/settings' });
  const sessionsSlot = h('div', { id: 'sessions' });
  const reloadSessions = () =>
    loadInto(sessionsSlot, () => api('/me/sessions'), (sessions) => sessionsCard(sessions, reloadSessions));

  loadInto(
    body,
    async () => {
      const [settings, me, guardian] = await Promise.all([
        api('/me/privacy-settings'),
        api('/me'),
        api('/me/guardian', { global: false }).catch(() => null), // the 监护人 entry is optional
      ]);
      rememberMe(me);
      return { settings, me, guardian };
    },
    ({ settings, me, guardian }) => {
      reloadSessions();
      return [
        card('隐私设置', h('div', { class: 'switch-list' }, SWITCHES.map(([key, title, desc]) => switchRow(key, title, desc, settings[key])))),
        cellGroup(
          cell({ href: '#/settings/consents', label: '授权管理', iconName: 'toggle', id: 'entry-consents' }),
          cell({ href: '#/settings/export', label: '下载我的数据', iconName: 'download', id: 'entry-export' }),
        ),
        h('h2', { class: 'group-title' }, '账号安全'),
        cellGroup(
          cell({
            href: '#/settings/password',
            label: me.has_password ? '修改登录密码' : '设置登录密码',
            value: me.has_password ? '已设置' : '未设置',
            iconName: 'lock',
            id: 'entry-password',
          }),
          // 监护人 (P42): for users under 18, and for an adult whose guardian link is still on record.
          guardian && (guardian.minor || guardian.guardian_phone)
            ? cell({ href: '#/me/guardian', label: '监护人', value: guardian.guardian_phone ? '已关联' : '未关联', iconName: 'users', id: 'entry-guardian' })
            : null,
        ),
        sessionsSlot,
        cellGroup(cell({ href: '#/settings/cancel', label: '注销账号', iconName: 'trash', id: 'entry-cancel' })),
      ];
    },
  );
  return el;
}
