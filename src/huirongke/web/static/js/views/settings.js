// 设置: 隐私政策, 账号安全和隐私设置, 联系我们.

import { h } from '../dom.js';
import { cell, cellGroup, page } from '../ui.js';

export function settingsView() {
  const { el, body } = page({ title: '设置', back: '/me' });
  body.append(
    cellGroup(
      cell({ href: '#/settings/security', label: '账号安全和隐私设置', iconName: 'shield', id: 'entry-security' }),
      cell({ href: '#/settings/policy', label: '隐私政策', iconName: 'doc', id: 'entry-policy' }),
      cell({ href: '#/contact', label: '联系我们', iconName: 'headset', id: 'entry-contact' }),
    ),
    h('p', { class: 'footnote' }, '汇容客 · 网页版'),
  );
  return el;
}
