// Data-rights cases (P34, P35, P37): the identity check by SMS code that every case goes through,
// and the pieces the 联系我们 and 我的申请 screens share.

import { api, errorText } from './api.js';
import { h, icon } from './dom.js';
import { formatDateTime, formatDay, maskPhone } from './format.js';
import { codeInput, typedCode, devHint, fillFromOutbox, outboxMark, sendErrorText, startCountdown, waitFrom } from './sms.js';
import { state } from './state.js';
import { alertBox, field, setFieldError, toast, withLoading } from './ui.js';

/** The reply period after the identity check: 15 calendar days (the policy's promise). */
export const DEADLINE_DAYS = 15;

export const CASE_TONES = {
  awaiting_verification: 'pending',
  open: 'info',
  resolved: 'ok',
  refused: 'bad',
};

export function caseBadge(c, id) {
  return h('span', { class: `badge badge--${CASE_TONES[c.status] || 'pending'}`, id }, c.status_label);
}

/** The signed-in user's phone (for the hint and the dev outbox), without triggering global dialogs. */
export async function ownPhone() {
  if (state.me && state.me.phone) return state.me.phone;
  const me = await api('/me', { global: false });
  return me.phone;
}

/**
 * The SMS-code step of a case. `sentAt` (ms) is when the code went out (for the resend countdown)
 * and `mark` the dev outbox mark taken before it (outboxMark); onVerified(case) runs with the
 * verified case.
 */
export function caseVerifyBlock(c, { onVerified, sentAt = Date.now(), mark = 0, idPrefix = 'case' }) {
  let after = mark;
  const code = codeInput(`${idPrefix}-code`);
  const resend = h('button', { type: 'button', class: 'code-btn', id: `${idPrefix}-resend` }, '重新发送验证码');
  const fCode = field({ label: '验证码', input: code });
  fCode.row.querySelector('.field-control').append(resend);
  const alert = alertBox();
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block', id: `${idPrefix}-verify` }, '提交验证');
  const lead = h('p', { class: 'card-note' }, '为确认是您本人提交，我们已向您的手机发送验证码，请在 5 分钟内填写。');
  ownPhone()
    .then((phone) => {
      if (phone) lead.textContent = `为确认是您本人提交，我们已向 ${maskPhone(phone)} 发送验证码，请在 5 分钟内填写。`;
    })
    .catch(() => {});

  const dev = devHint(`${idPrefix}-dev-fill`, () =>
    withLoading(dev.button, async () => {
      alert.clear();
      let phone;
      try {
        phone = await ownPhone();
      } catch (err) {
        alert.show(errorText(err));
        return;
      }
      await fillFromOutbox({
        phone,
        pattern: /申请/,
        after,
        code,
        codeField: fCode,
        alert,
        missing: '开发发件箱里还没有这条申请的验证码，请点击“重新发送验证码”。',
      });
    }),
  );

  const elapsed = Math.floor((Date.now() - sentAt) / 1000);
  if (elapsed < 60) startCountdown(resend, 60 - elapsed, '重新发送验证码');

  resend.addEventListener('click', async () => {
    alert.clear();
    const wait = await withLoading(resend, async () => {
      try {
        const next = await outboxMark(ownPhone);
        const res = await api(`/me/cases/${encodeURIComponent(c.id)}/verification-code`, { method: 'POST' });
        after = next; // only once a new code is on its way
        toast('验证码已重新发送', 'success');
        code.focus();
        return res.resend_after || 60;
      } catch (err) {
        if (!err.handled) alert.show(sendErrorText(err));
        return waitFrom(err);
      }
    });
    if (wait) startCountdown(resend, wait, '重新发送验证码');
  });

  const form = h(
    'form',
    { class: 'verify-form', novalidate: true, 'aria-label': '验证身份', id: `${idPrefix}-verify-form` },
    lead,
    fCode.row,
    dev && dev.el,
    alert.el,
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.clear();
    setFieldError(fCode, null);
    const value = typedCode(code, fCode);
    if (value === null) return;
    await withLoading(submit, async () => {
      try {
        const verified = await api(`/me/cases/${encodeURIComponent(c.id)}/verification`, { method: 'POST', json: { code: value } });
        toast('身份已验证，申请已受理', 'success');
        onVerified(verified);
      } catch (err) {
        if (err.handled) return;
        if (err.code === 'invalid_code') {
          const left = err.details && err.details.attempts_left;
          setFieldError(fCode, left ? `${err.message}（还可尝试 ${left} 次）` : err.message);
          code.focus();
        } else {
          alert.show(errorText(err));
        }
      }
    });
  });
  return form;
}

/** After verification: the status (处理中) and the deadline. */
export function caseAcceptedCard(c, { onAnother }) {
  const another = h('button', { type: 'button', class: 'btn btn--ghost btn--block' }, '继续提交');
  another.addEventListener('click', onAnother);
  return h(
    'section',
    { class: 'card case-accepted', 'aria-labelledby': 'case-accepted-title', id: 'case-accepted' },
    h('span', { class: 'case-accepted-icon' }, icon('check')),
    h('h2', { class: 'case-accepted-title', id: 'case-accepted-title' }, '申请已受理'),
    h('p', { class: 'case-accepted-meta' }, c.kind_label, ' · ', caseBadge(c, 'case-status')),
    h(
      'p',
      { class: 'card-text', id: 'case-deadline' },
      c.deadline
        ? `我们将在 ${formatDay(c.deadline)} 前处理完毕（身份验证后 ${DEADLINE_DAYS} 天内），处理结果会显示在“我的申请”中。`
        : `我们将在身份验证后 ${DEADLINE_DAYS} 天内处理完毕，处理结果会显示在“我的申请”中。`,
    ),
    h('div', { class: 'case-accepted-actions' }, h('a', { class: 'btn btn--primary btn--block', href: '#/contact/cases' }, '查看我的申请'), another),
  );
}

export function historyList(events) {
  return h(
    'ol',
    { class: 'timeline' },
    events.map((e) =>
      h(
        'li',
        { class: 'timeline-item' },
        h('span', { class: 'timeline-status' }, e.status_label),
        h('time', { class: 'timeline-time', datetime: e.at }, formatDateTime(e.at)),
        e.note ? h('span', { class: 'timeline-note' }, e.note) : null,
      ),
    ),
  );
}
