// Minors (P42, R09).
// 监护人同意 (#/me/guardian): a user under 18 is restricted until a guardian confirms by an SMS code
// sent to the guardian's phone. Shown after sign-in and whenever the API answers 403
// guardian_consent_required.
// 监护人服务 (#/guardian, public): a guardian without an account verifies their phone and asks for
// the child's data (downloaded with X-Guardian-Token) or for the child's account to be deleted.

import { api, errorText } from '../api.js';
import { signOut } from '../auth.js';
import { h, icon } from '../dom.js';
import { formatDateTime } from '../format.js';
import { exportTracker } from '../exports.js';
import { navigate } from '../nav.js';
import { codeInput, devHint, fillFromOutbox, outboxMark, phoneInput, sendErrorText, startCountdown, validPhone, waitFrom } from '../sms.js';
import { getToken } from '../store.js';
import { alertBox, card, cell, cellGroup, confirmDialog, field, loadInto, page, setFieldError, toast, withLoading } from '../ui.js';

/** Phone + code fields with 获取验证码 and the dev fill: the part both guardian screens share. */
function phoneCodeFields(prefix, { sendPath, auth, outboxPattern, alert }) {
  const phone = phoneInput(`${prefix}-phone`, '请输入监护人的手机号');
  const code = codeInput(`${prefix}-code`);
  const send = h('button', { type: 'button', class: 'code-btn', id: `${prefix}-send` }, '获取验证码');
  const fPhone = field({ label: '手机号', input: phone });
  fPhone.row.querySelector('.field-control').prepend(h('span', { class: 'phone-prefix', 'aria-hidden': 'true' }, '+86'));
  const fCode = field({ label: '验证码', input: code });
  fCode.row.querySelector('.field-control').append(send);
  let mark = 0;

  send.addEventListener('click', async () => {
    alert.clear();
    setFieldError(fPhone, null);
    if (!validPhone(phone.value.trim())) {
      setFieldError(fPhone, '请输入有效的中国大陆手机号码');
      phone.focus();
      return;
    }
    const wait = await withLoading(send, async () => {
      try {
        const next = await outboxMark(phone.value.trim());
        const res = await api(sendPath, { method: 'POST', json: { guardian_phone: phone.value.trim() }, auth });
        mark = next; // only once a new code is on its way
        toast('验证码已发送', 'success');
        code.focus();
        return res.resend_after || 60;
      } catch (err) {
        if (err.handled) return 0;
        if (err.code === 'invalid_phone' || err.code === 'guardian_phone_is_own') setFieldError(fPhone, err.message);
        else alert.show(sendErrorText(err));
        return waitFrom(err);
      }
    });
    if (wait) startCountdown(send, wait);
  });

  const dev = devHint(`${prefix}-dev-fill`, () =>
    withLoading(dev.button, async () => {
      alert.clear();
      if (!validPhone(phone.value.trim())) {
        setFieldError(fPhone, '请先输入监护人的手机号');
        phone.focus();
        return;
      }
      await fillFromOutbox({
        phone: phone.value.trim(),
        pattern: outboxPattern,
        after: mark,
        code,
        codeField: fCode,
        alert,
        missing: '开发发件箱里还没有发往该号码的验证码，请先点击“获取验证码”。',
      });
    }),
  );

  /** The {guardian_phone, code} to send, or null after marking what is missing. */
  const values = () => {
    setFieldError(fPhone, null);
    setFieldError(fCode, null);
    const p = phone.value.trim();
    const c = code.value.trim();
    if (!validPhone(p)) {
      setFieldError(fPhone, '请输入有效的中国大陆手机号码');
      phone.focus();
      return null;
    }
    if (!/^\d{4,8}$/.test(c)) {
      setFieldError(fCode, '请输入短信验证码');
      code.focus();
      return null;
    }
    return { guardian_phone: p, code: c };
  };
  const codeError = (err) => {
    const left = err.details && err.details.attempts_left;
    setFieldError(fCode, left ? `${err.message}（还可尝试 ${left} 次）` : err.message);
    code.focus();
  };
  return { rows: [fPhone.row, fCode.row], dev: dev && dev.el, values, codeError, fPhone };
}

/* ---------- 监护人同意 (signed in, the minor's own screen) ---------- */

function consentForm() {
  const alert = alertBox();
  const fields = phoneCodeFields('guardian', { sendPath: '/me/guardian/sms-codes', auth: true, outboxPattern: /监护人/, alert });
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block btn--lg', id: 'guardian-submit' }, '确认监护人同意');
  const form = h(
    'form',
    { class: 'guardian-form', novalidate: true, 'aria-labelledby': 'guardian-form-title' },
    card(
      '监护人验证',
      h('p', { class: 'card-note', id: 'guardian-form-title' }, '请监护人本人填写手机号并接收验证码。验证码只用于确认监护人同意。'),
      h('div', { class: 'login-fields login-fields--card' }, ...fields.rows),
      fields.dev,
    ),
    alert.el,
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.clear();
    const body = fields.values();
    if (!body) return;
    await withLoading(submit, async () => {
      try {
        const status = await api('/me/guardian/consent', { method: 'POST', json: body });
        if (status.restricted) {
          alert.show('监护人同意尚未生效，请稍后重试');
          return;
        }
        toast('监护人已同意，您可以正常使用汇容客了', 'success', 3000);
        navigate('/me', { replace: true });
      } catch (err) {
        if (err.handled) return;
        if (err.code === 'invalid_code') fields.codeError(err);
        else if (err.code === 'invalid_phone' || err.code === 'guardian_phone_is_own') setFieldError(fields.fPhone, err.message);
        else alert.show(errorText(err));
      }
    });
  });
  return form;
}

export function guardianConsentView() {
  const { el, body } = page({ title: '监护人同意', back: '/me' });
  loadInto(
    body,
    () => api('/me/guardian'),
    (status) => {
      if (!status.restricted) {
        const text = status.minor
          ? `您的监护人已于 ${formatDateTime(status.guardian_consented_at)} 同意您使用汇容客。`
          : '您已年满 18 周岁或未填写生日，无需监护人同意。';
        return h(
          'div',
          { class: 'state', id: 'guardian-done' },
          h('span', { class: 'declined-icon' }, icon('shield')),
          h('p', {}, text),
          h('a', { class: 'btn btn--primary btn--sm', href: '#/me' }, '返回我的'),
        );
      }
      const logout = h('button', { type: 'button', class: 'btn btn--ghost btn--block' }, '退出登录');
      logout.addEventListener('click', async () => {
        const ok = await confirmDialog({ title: '退出登录？', message: '退出后需要重新验证手机号才能登录。', confirmText: '退出登录', danger: true });
        if (ok) await withLoading(logout, () => signOut());
      });
      return [
        h(
          'section',
          { class: 'card guardian-intro', 'aria-labelledby': 'guardian-title', id: 'guardian-required' },
          h('span', { class: 'declined-icon' }, icon('users')),
          h('h2', { class: 'guardian-title', id: 'guardian-title' }, '需要监护人同意'),
          h('p', {}, '根据《汇容客隐私政策》，未满 18 周岁的用户须在使用前征得父母或其他监护人的同意。'),
          h('p', { class: 'muted' }, '监护人同意之前，您仍可以查看和修改个人资料、阅读隐私政策、下载您的数据、注销账号或联系我们。'),
        ),
        consentForm(),
        cellGroup(
          cell({ href: '#/me/profile', label: '个人资料', iconName: 'idcard' }),
          cell({ href: '#/settings/export', label: '下载我的数据', iconName: 'download', id: 'guardian-export' }),
          cell({ href: '#/settings/cancel', label: '注销账号', iconName: 'trash', id: 'guardian-cancel' }),
          cell({ href: '#/contact', label: '生日填写有误？提交更正申请', iconName: 'headset' }),
        ),
        logout,
      ];
    },
  );
  return el;
}

/* ---------- 监护人服务 (public: the guardian has no account) ---------- */

function childResult(r, kind, i) {
  const name = r.nickname || '孩子';
  if (kind === 'export') {
    return exportTracker(
      { id: r.export_id, status: 'pending', progress: 0, download_url: null },
      {
        idPrefix: `guardian-export-${i}`,
        title: `${name}的个人信息`,
        poll: () => api(`/guardian/exports/${encodeURIComponent(r.export_id)}`, { auth: false, headers: { 'X-Guardian-Token': r.download_token } }),
        requestOpts: { auth: false, headers: { 'X-Guardian-Token': r.download_token } },
      },
    );
  }
  return card(
    r.nickname || '孩子的账号',
    h(
      'p',
      { class: 'card-text', id: `guardian-erase-${i}` },
      r.erase_after ? `已提交注销申请，将于 ${formatDateTime(r.erase_after)} 起删除该账号及其个人信息。` : '已提交注销申请。',
    ),
  );
}

export function guardianServiceView() {
  const { el, body } = page({ title: '监护人服务', back: '/contact' });
  const alert = alertBox();
  const fields = phoneCodeFields('gs', { sendPath: '/guardian/sms-codes', auth: false, outboxPattern: /监护人/, alert });
  const kinds = [
    ['export', '导出孩子的个人信息'],
    ['deletion', '删除孩子的账号和个人信息'],
  ];
  const kindGroup = h(
    'div',
    { class: 'choice-list', role: 'radiogroup', 'aria-label': '申请类型', id: 'gs-kind' },
    kinds.map(([value, label], i) =>
      h(
        'label',
        { class: 'choice' },
        h('input', { type: 'radio', name: 'gs-kind', value, checked: i === 0, class: 'checkbox' }),
        h('span', {}, label),
      ),
    ),
  );
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block btn--lg', id: 'gs-submit' }, '验证并提交');
  const results = h('div', { class: 'guardian-results', id: 'gs-results', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'guardian-form', novalidate: true, 'aria-label': '监护人身份验证' },
    card(
      '验证监护人身份',
      h('p', { class: 'card-note' }, '请填写当初同意孩子使用汇容客时验证过的手机号。只有登记为监护人的号码才会收到验证码。'),
      h('div', { class: 'login-fields login-fields--card' }, ...fields.rows),
      fields.dev,
    ),
    card('您要办理的事项', kindGroup),
    alert.el,
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.clear();
    const base = fields.values();
    if (!base) return;
    const kind = kindGroup.querySelector('input:checked').value;
    if (kind === 'deletion') {
      const ok = await confirmDialog({
        title: '删除孩子的账号？',
        message: '提交后，孩子的账号将进入注销流程，冷静期结束后其个人信息会被删除且无法恢复。',
        confirmText: '确认删除',
        danger: true,
      });
      if (!ok) return;
    }
    await withLoading(submit, async () => {
      try {
        const rows = await api('/guardian/requests', { method: 'POST', json: { ...base, kind }, auth: false });
        results.replaceChildren(
          h('p', { class: 'notice' }, icon('check'), h('span', {}, kind === 'export' ? '身份已验证，正在为您导出孩子的个人信息。' : '身份已验证，注销申请已提交。')),
          ...rows.map((r, i) => childResult(r, kind, i)),
        );
        form.hidden = true;
        results.scrollIntoView({ block: 'start' });
      } catch (err) {
        if (err.code === 'invalid_code') fields.codeError(err);
        else alert.show(errorText(err));
      }
    });
  });
  body.append(
    h(
      'p',
      { class: 'notice' },
      icon('info'),
      h('span', {}, '如果您是未成年用户的父母或其他监护人，并且曾通过短信验证同意孩子使用汇容客，可以在这里导出孩子的个人信息或申请删除，无需注册账号。'),
    ),
    form,
    results,
    getToken() ? null : h('p', { class: 'footnote' }, '其他问题请拨打客服热线，或通过“联系我们”与我们联系。'),
  );
  return el;
}
