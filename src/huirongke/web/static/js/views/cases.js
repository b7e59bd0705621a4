// 我的申请: every case with its status, deadline, outcome (or the reasons for a refusal and the
// right to go to court, R14) and its history. Cases still awaiting the SMS check can be verified
// here. A rights screen: it works before agreeing to a new policy version.

import { api } from '../api.js';
import { h, icon } from '../dom.js';
import { formatDateTime, formatDay } from '../format.js';
import { rerender } from '../nav.js';
import { caseBadge, caseVerifyBlock, DEADLINE_DAYS, historyList } from '../cases.js';
import { loadInto, page } from '../ui.js';

function kv(label, value, id) {
  return h('div', { id }, h('dt', {}, label), h('dd', {}, value));
}

function caseCard(c) {
  const parts = [
    h(
      'div',
      { class: 'list-card-head' },
      h('h2', { class: 'list-card-title' }, c.kind_label),
      caseBadge(c),
    ),
    h('p', { class: 'list-card-sub' }, `提交于 ${formatDateTime(c.created_at)}`),
    c.description ? h('p', { class: 'case-text' }, c.description) : null,
  ];
  const rows = [];
  if (c.ground_label) rows.push(kv('删除理由', c.ground_label));
  if (c.deadline) rows.push(kv('处理期限', `${formatDay(c.deadline)} 前（身份验证后 ${DEADLINE_DAYS} 天内）`));
  if (c.resolution) rows.push(kv('处理结果', c.resolution));
  if (rows.length) parts.push(h('dl', { class: 'kv kv--stacked' }, rows));
  if (c.status === 'refused') {
    parts.push(
      h(
        'div',
        { class: 'refusal', role: 'note' },
        h('p', { class: 'refusal-title' }, '不予处理的理由'),
        h('p', {}, c.refusal_reason || '—'),
        c.court_notice ? h('p', { class: 'refusal-court' }, icon('info'), h('span', {}, c.court_notice)) : null,
      ),
    );
  }
  if (c.status === 'awaiting_verification') {
    const slot = h('div', { class: 'case-verify-slot' });
    const start = h('button', { type: 'button', class: 'btn btn--outline btn--sm', id: `verify-${c.id}` }, '验证身份');
    start.addEventListener('click', () => {
      // The code from submitting may have expired: 重新发送验证码 is right there.
      slot.replaceChildren(caseVerifyBlock(c, { sentAt: 0, idPrefix: `case-${c.id}`, onVerified: () => rerender() }));
      start.remove();
    });
    parts.push(h('p', { class: 'card-note' }, '该申请尚未完成身份验证，验证后才会开始处理。'), start, slot);
  }
  if (c.history && c.history.length) {
    parts.push(h('details', { class: 'case-history' }, h('summary', {}, `处理记录（${c.history.length}）`), historyList(c.history)));
  }
  return h('li', { class: 'card list-card', dataset: { status: c.status, kind: c.kind }, id: `case-${c.id}` }, parts);
}

export function casesView() {
  const { el, body } = page({ title: '我的申请', back: '/contact' });
  loadInto(
    body,
    () => api('/me/cases'),
    (cases) =>
      cases.length
        ? h('ul', { class: 'list-cards', id: 'case-list' }, cases.map(caseCard))
        : h(
            'div',
            { class: 'state', id: 'case-list' },
            h('p', {}, '您还没有提交过申请'),
            h('a', { class: 'btn btn--outline btn--sm', href: '#/contact' }, '去提交'),
          ),
  );
  return el;
}
