// 关于汇容客: the version this server runs (from the shell), the operator, and the documents.

import { h } from '../dom.js';
import { getToken } from '../store.js';
import { cell, cellGroup, page } from '../ui.js';
import { appVersion } from './settings.js';

export function aboutView() {
  const { el, body } = page({ title: '关于汇容客', back: getToken() ? '/settings' : '/login' });
  const version = appVersion();
  const company = document.body.dataset.company;
  body.append(
    h(
      'div',
      { class: 'about-hero' },
      h('span', { class: 'brand-mark brand-mark--lg', 'aria-hidden': 'true' }, '汇'),
      h('p', { class: 'about-name' }, '汇容客'),
      h('p', { class: 'about-version', id: 'about-version' }, version ? `版本 ${version}` : '版本未知'),
    ),
    cellGroup(
      cell({ href: '#/policy', label: '隐私政策', iconName: 'doc' }),
      cell({ href: '#/policy/collection', label: '已收集个人信息清单', iconName: 'list' }),
      cell({ href: '#/policy/sharing', label: '第三方信息共享清单', iconName: 'share' }),
      cell({ href: '#/contact', label: '联系我们', iconName: 'headset' }),
    ),
    company ? h('p', { class: 'footnote', id: 'about-company' }, company) : null,
  );
  return el;
}
