// A user's public profile, exactly as GET /users/{id} returns it: phone and region only when present.

import { api } from '../api.js';
import { h, icon } from '../dom.js';
import { genderLabel, nationalPhone } from '../format.js';
import { state } from '../state.js';
import { avatar, card, loadInto, page } from '../ui.js';

export function publicProfileView({ params }) {
  const own = state.me && state.me.id === params.id;
  const { el, body } = page({ title: own ? '我的公开主页' : '个人主页', back: own ? '/me/profile' : '/me' });
  loadInto(
    body,
    () => api(`/users/${encodeURIComponent(params.id)}`),
    (user) => {
      if (user.cancelled) {
        return h('div', { class: 'state' }, avatar(null, '', 'lg'), h('p', {}, '该用户已注销'));
      }
      const rows = [];
      if (Object.hasOwn(user, 'phone') && user.phone) {
        rows.push(
          h(
            'div',
            { id: 'public-phone' },
            h('dt', {}, '手机号'),
            h('dd', {}, h('a', { class: 'link', href: `tel:${user.phone}` }, nationalPhone(user.phone))),
          ),
        );
      }
      if (Object.hasOwn(user, 'region') && user.region) {
        rows.push(h('div', { id: 'public-region' }, h('dt', {}, '地区'), h('dd', {}, user.region)));
      }
      if (user.gender) rows.push(h('div', {}, h('dt', {}, '性别'), h('dd', {}, genderLabel(user.gender))));
      return [
        own
          ? h(
              'p',
              { class: 'notice' },
              icon('info'),
              h('span', {}, '这是其他用户看到的您的主页。', h('a', { class: 'link', href: '#/settings/security' }, '管理展示内容')),
            )
          : null,
        h(
          'section',
          { class: 'card public-card', 'aria-label': '主页资料', id: 'public-profile' },
          avatar(user.avatar_url, user.nickname, 'xl'),
          h('h2', { class: 'public-name', id: 'public-nickname' }, user.nickname),
          user.real_name_verified ? h('span', { class: 'badge badge--ok' }, icon('shield'), '已实名') : null,
          user.tags && user.tags.length
            ? h('ul', { class: 'chips chips--center', 'aria-label': '个人标签' }, user.tags.map((t) => h('li', { class: 'chip chip--static' }, t)))
            : null,
        ),
        rows.length ? card('资料', h('dl', { class: 'kv' }, rows)) : null,
      ].filter(Boolean);
    },
  );
  return el;
}
