// Minors (P42, R09).
// 监护人 (#/me/guardian): a user under 18 is restricted until a guardian confirms by an SMS code
// sent to the guardian's phone (shown after sign-in and whenever the API answers 403
// guardian_consent_required). Once linked, the screen shows the guardian (masked number, since
// when, until the 18th birthday) and 解除监护关联: a minor needs the guardian's agreement (a code
// texted to the guardian, who tells it to the user); an adult removes a stale link after a
// confirmation. Adults are never offered linking (403 not_a_minor).
// 监护人服务 (#/guardian, public): a guardian without an account verifies their phone and asks for
// the child's data (downloaded with X-Guardian-Token) or for the child's account to be deleted.

import { api, errorText } from '../api.js';
import { signOut } from '../auth.js';
import { h, icon } from '../dom.js';
import { formatDateTime, formatDay } from '../format.js';
import { exportTracker } from '../exports.js';
import { navigate } from '../nav.js';
import { codeInput, typedCode, devHint, fillFromOutbox, outboxMark, phoneInput, sendErrorText, startCountdown, validPhone, waitFrom } from '../sms.js';
import { getToken } from '../store.js';
import { alertBox, card, cell, cellGroup, confirmDialog, field, loadInto, page, setFieldError, toast, withLoading } from '../ui.js';

/** Phone + code fields with 获取验证码 and the dev fill: the part both guardian screens share. */
function phoneCodeFields(prefix, { sendPath, auth, outboxPattern, alert, reload = null }) {
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
        if (err.handled || (reload && staleState(err, reload))) return 0;
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

/* ---------- 监护人 (signed in: link, see, unlink) ---------- */

// What the guardian endpoints answer when the account's state is not what this screen showed, or
// the code is missing: said in the user's terms.
const GUARDIAN_ERRORS = {
  not_a_minor: '监护人同意仅适用于未满 18 周岁的用户。您已年满 18 周岁，无需也不能关联监护人。',
  guardian_already_linked: '您已关联监护人。如需更换，请先在监护人同意下解除当前的监护关联。',
  guardian_not_linked: '您目前没有关联监护人，无需解除。',
  guardian_agreement_required: '您未满 18 周岁，解除监护关联需要监护人同意：请先向监护人手机发送验证码，再填写监护人告知您的验证码。',
  guardian_agreement_not_needed: '您已年满 18 周岁，无需监护人验证码，可以直接解除监护关联。',
};
// The codes that mean the screen is out of date: say why, then show the account as it is now.
const STALE_STATE = new Set(['not_a_minor', 'guardian_already_linked', 'guardian_not_linked', 'guardian_agreement_not_needed']);

function guardianErrorText(err) {
  return GUARDIAN_ERRORS[err.code] || errorText(err);
}

/** True (after telling the user) when `err` means the screen no longer matches the account. */
function staleState(err, reload) {
  if (!STALE_STATE.has(err.code)) return false;
  toast(guardianErrorText(err), 'info', 4000);
  reload();
  return true;
}

function consentForm(reload) {
  const alert = alertBox();
  const fields = phoneCodeFields('guardian', { sendPath: '/me/guardian/sms-codes', auth: true, outboxPattern: /监护人身份/, alert, reload });
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
        if (err.handled || staleState(err, reload)) return;
        if (err.code === 'invalid_code') fields.codeError(err);
        else if (err.code === 'invalid_phone' || err.code === 'guardian_phone_is_own') setFieldError(fields.fPhone, err.message);
        else alert.show(errorText(err));
      }
    });
  });
  return form;
}

function restrictedScreen(reload) {
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
    consentForm(reload),
    cellGroup(
      cell({ href: '#/me/profile', label: '个人资料', iconName: 'idcard' }),
      cell({ href: '#/settings/export', label: '下载我的数据', iconName: 'download', id: 'guardian-export' }),
      cell({ href: '#/settings/cancel', label: '注销账号', iconName: 'trash', id: 'guardian-cancel' }),
      cell({ href: '#/contact', label: '生日填写有误？提交更正申请', iconName: 'headset' }),
    ),
    logout,
  ];
}

/** A minor unlinking: a code goes to the guardian's phone, the guardian agrees by telling it. */
function unlinkWithGuardian(status, reload) {
  const alert = alertBox();
  const code = codeInput('guardian-unlink-code');
  const send = h('button', { type: 'button', class: 'code-btn', id: 'guardian-unlink-send' }, '发送验证码');
  const fCode = field({ label: '验证码', input: code });
  fCode.row.querySelector('.field-control').append(send);
  const submit = h('button', { type: 'submit', class: 'btn btn--danger btn--block', id: 'guardian-unlink-submit' }, '确认解除');
  const cancel = h('button', { type: 'button', class: 'btn btn--ghost btn--block', id: 'guardian-unlink-cancel' }, '暂不解除');
  const form = h(
    'form',
    { class: 'guardian-form', novalidate: true, id: 'guardian-unlink', hidden: true, 'aria-labelledby': 'guardian-unlink-title' },
    h(
      'section',
      { class: 'card' },
      h('h2', { class: 'card-title', id: 'guardian-unlink-title' }, '解除监护关联'),
      h(
        'p',
        { class: 'card-text', id: 'guardian-unlink-explain' },
        `您未满 18 周岁，解除监护关联需要监护人同意。点击“发送验证码”后，验证码将发送到监护人的手机 ${status.guardian_phone}；监护人同意解除的，会把验证码告诉您，请填写在下方。`,
      ),
      h('p', { class: 'card-note' }, '解除后，在新的监护人同意之前，您只能使用部分功能（查看和修改个人资料、下载您的数据、注销账号等）。'),
      h('div', { class: 'login-fields login-fields--card' }, fCode.row),
    ),
    alert.el,
    submit,
    cancel,
  );
  const start = h('button', { type: 'button', class: 'btn btn--danger-outline btn--block', id: 'guardian-unlink-start' }, '解除监护关联');
  start.addEventListener('click', () => {
    start.hidden = true;
    form.hidden = false;
    send.focus();
  });
  cancel.addEventListener('click', () => {
    alert.clear();
    setFieldError(fCode, null);
    form.hidden = true;
    start.hidden = false;
    start.focus();
  });

  send.addEventListener('click', async () => {
    alert.clear();
    const wait = await withLoading(send, async () => {
      try {
        // A JSON body, so that a 429 challenge_required can be answered in it (api.js).
        const res = await api('/me/guardian/revocation/sms-codes', { method: 'POST', json: {} });
        toast('验证码已发送到监护人的手机', 'success');
        code.focus();
        return res.resend_after || 60;
      } catch (err) {
        if (err.handled || staleState(err, reload)) return 0;
        alert.show(waitFrom(err) ? sendErrorText(err) : guardianErrorText(err));
        return waitFrom(err);
      }
    });
    if (wait) startCountdown(send, wait);
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.clear();
    setFieldError(fCode, null);
    const value = typedCode(code, fCode, '请填写监护人告知您的验证码');
    if (value === null) return;
    await withLoading(submit, async () => {
      try {
        await api('/me/guardian', { method: 'DELETE', json: { code: value } });
        toast('已解除监护关联', 'success', 3000);
        reload();
      } catch (err) {
        if (err.handled || staleState(err, reload)) return;
        if (err.code === 'invalid_code') {
          const left = err.details && err.details.attempts_left;
          setFieldError(fCode, `验证码不正确或已过期，请向监护人核对${left ? `（还可尝试 ${left} 次）` : ''}`);
          code.focus();
        } else {
          alert.show(guardianErrorText(err));
        }
      }
    });
  });
  return [start, form];
}

/** An adult with a link from before their 18th birthday: it has no effect and goes at will. */
function unlinkStale(reload) {
  const button = h('button', { type: 'button', class: 'btn btn--danger-outline btn--block', id: 'guardian-unlink-start' }, '解除监护关联');
  button.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: '解除监护关联？',
      message: '您已年满 18 周岁，原监护人已不能代您行使任何权利。解除后，其手机号将不再与您的账号关联。',
      confirmText: '解除关联',
      danger: true,
    });
    if (!ok) return;
    await withLoading(button, async () => {
      try {
        await api('/me/guardian', { method: 'DELETE', json: {} });
        toast('已解除监护关联', 'success', 3000);
        reload();
      } catch (err) {
        if (err.handled || staleState(err, reload)) return;
        if (err.code === 'guardian_agreement_required') {
          // Under 18 after all (the birthday was corrected): show the minor's way.
          toast(guardianErrorText(err), 'info', 4000);
          reload();
        } else {
          toast(guardianErrorText(err), 'error', 4000);
        }
      }
    });
  });
  return button;
}

function linkedScreen(status, reload) {
  const rows = [
    ['监护人手机号', status.guardian_phone, 'guardian-linked-phone'],
    ['关联时间', formatDateTime(status.guardian_linked_at), 'guardian-linked-at'],
    [
      '监护权限有效至',
      status.guardian_active ? (status.guardian_until ? formatDay(status.guardian_until) : '您年满 18 周岁时') : '已结束',
      'guardian-linked-until',
    ],
  ];
  const note = status.guardian_active
    ? `监护人可以代您申请导出或删除您的个人信息。${status.guardian_until ? `您年满 18 周岁（${formatDay(status.guardian_until)}）时，` : '您年满 18 周岁时，'}监护人的这些权限自动结束。`
    : '您已年满 18 周岁，监护人的权限已经结束，这条关联不再有任何作用，您可以直接解除。';
  return [
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'guardian-linked-title', id: 'guardian-linked' },
      h('h2', { class: 'card-title', id: 'guardian-linked-title' }, '我的监护人'),
      h(
        'dl',
        { class: 'kv' },
        rows.map(([label, value, id]) => h('div', {}, h('dt', {}, label), h('dd', { id }, value))),
      ),
      h('p', { class: 'card-note card-note--after', id: 'guardian-linked-note' }, note),
    ),
    ...(status.revocation_needs_guardian ? unlinkWithGuardian(status, reload) : [unlinkStale(reload)]),
  ];
}

function plainState(id, text) {
  return h(
    'div',
    { class: 'state', id },
    h('span', { class: 'declined-icon' }, icon('shield')),
    h('p', {}, text),
    h('a', { class: 'btn btn--primary btn--sm', href: '#/me' }, '返回我的'),
  );
}

export function guardianConsentView() {
  const { el, body } = page({ title: '监护人', back: '/me' });
  const reload = () =>
    loadInto(
      body,
      () => api('/me/guardian'),
      (status) => {
        if (status.restricted) return restrictedScreen(reload);
        if (status.guardian_phone) return linkedScreen(status, reload);
        if (status.minor) {
          return plainState('guardian-done', `您的监护人已于 ${formatDateTime(status.guardian_consented_at)} 同意您使用汇容客。`);
        }
        // Not offered to adults: linking is for users under 18 only (403 not_a_minor).
        return plainState('guardian-done', '监护人同意仅适用于未满 18 周岁的用户。您已年满 18 周岁或未填写生日，无需关联监护人。');
      },
    );
  reload();
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
