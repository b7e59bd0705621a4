// 联系我们: the hotline (from the body's data-hotline) and the reply promise.

import { h, icon } from '../dom.js';
import { getToken } from '../store.js';
import { card, page } from '../ui.js';

const DEFAULT_HOTLINE = '400-0000-690';

export function contactView() {
  const hotline = (document.body.dataset.hotline || '').trim() || DEFAULT_HOTLINE;
  const company = (document.body.dataset.company || '').trim();
  const { el, body } = page({ title: '联系我们', back: getToken() ? '/settings' : '/login' });
  body.append(
    h(
      'section',
      { class: 'card contact-card', 'aria-labelledby': 'contact-title' },
      h('span', { class: 'contact-icon' }, icon('headset')),
      h('h2', { id: 'contact-title', class: 'contact-title' }, '客服与投诉热线'),
      h('a', { class: 'hotline', href: `tel:${hotline.replace(/[^\d+]/g, '')}`, id: 'hotline' }, hotline),
      h('a', { class: 'btn btn--primary btn--block', href: `tel:${hotline.replace(/[^\d+]/g, '')}` }, icon('phone'), '拨打热线'),
    ),
    card(
      '我们的承诺',
      h(
        'ul',
        { class: 'promise-list' },
        h('li', {}, '查阅、更正、删除个人信息，撤回授权或注销账号等请求，都可以通过热线提出。'),
        h('li', {}, '为保护你的账号，我们会先核验你的身份；核验通过后 15 天内给你答复。'),
        h('li', {}, `投诉举报热线：${hotline}。每一件投诉都会登记在案并持续跟踪，直到处理完毕。`),
        h('li', {}, '对处理结果不满意的，你可以向有关主管部门投诉，也可以依法向人民法院起诉。'),
      ),
    ),
    ...(company ? [h('p', { class: 'footnote' }, `运营者：${company}`)] : []),
  );
  return el;
}
