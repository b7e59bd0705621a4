// 我的: avatar, nickname, masked phone; entries to 个人资料 and 设置.

import { api } from '../api.js';
import { h, icon } from '../dom.js';
import { displayName, maskPhone } from '../format.js';
import { rememberMe } from '../state.js';
import { avatar, cell, cellGroup, loadInto, page } from '../ui.js';

export function meView() {
  const { el, body } = page({ title: '我的', tab: 'me', bare: true, className: 'page--me' });
  loadInto(
    body,
    async () => rememberMe(await api('/me')),
    (me) => [
      h('h1', { class: 'sr-only', tabindex: '-1' }, '我的'),
      h(
        'a',
        { class: 'me-header', href: '#/me/profile', id: 'me-header', 'aria-label': `${displayName(me)}，查看和编辑个人资料` },
        avatar(me.avatar_url, me.nickname, 'lg'),
        h(
          'span',
          { class: 'me-header-text' },
          h('span', { class: 'me-name', id: 'me-nickname' }, me.nickname || '未设置昵称'),
          h('span', { class: 'me-phone', id: 'me-phone' }, `手机号 ${maskPhone(me.phone)}`),
          me.real_name && me.real_name.status === 'verified'
            ? h('span', { class: 'badge badge--light' }, icon('shield'), '已实名')
            : null,
        ),
        h('span', { class: 'me-header-arrow' }, icon('chevron')),
      ),
      cellGroup(
        cell({ href: '#/me/profile', label: '个人资料', iconName: 'idcard', id: 'entry-profile' }),
        cell({ href: '#/settings', label: '设置', iconName: 'sliders', id: 'entry-settings' }),
      ),
    ],
  );
  return el;
}
