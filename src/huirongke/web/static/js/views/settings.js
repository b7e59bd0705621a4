// 设置: 账号安全和隐私设置, 隐私政策, 联系我们, 关于汇容客; 退出登录 at the bottom, as Chinese apps
// put it.

import { signOut } from '../auth.js';
import { h, icon } from '../dom.js';
import { cell, cellGroup, confirmDialog, page, toast, withLoading } from '../ui.js';

export function appVersion() {
  return document.body.dataset.version || '';
}

export function settingsView() {
  const { el, body } = page({ title: '设置', back: '/me' });
  const logout = h('button', { type: 'button', class: 'btn btn--plain-danger btn--block btn--lg settings-logout', id: 'logout' }, icon('logout'), '退出登录');
  logout.addEventListener('click', async () => {
    const ok = await confirmDialog({ title: '退出登录？', message: '退出后需要重新验证手机号才能登录。', confirmText: '退出登录', danger: true });
    if (!ok) return;
    await withLoading(logout, async () => {
      await signOut();
      toast('已退出登录');
    });
  });
  const version = appVersion();
  body.append(
    cellGroup(
      cell({ href: '#/settings/security', label: '账号安全和隐私设置', iconName: 'shield', id: 'entry-security' }),
      cell({ href: '#/settings/policy', label: '隐私政策', iconName: 'doc', id: 'entry-policy' }),
      cell({ href: '#/contact', label: '联系我们', iconName: 'headset', id: 'entry-contact' }),
    ),
    cellGroup(
      cell({ href: '#/settings/about', label: '关于汇容客', value: version ? `版本 ${version}` : null, iconName: 'info', id: 'entry-about' }),
    ),
    logout,
  );
  return el;
}
