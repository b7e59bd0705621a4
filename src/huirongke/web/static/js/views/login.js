// 登录 / 注册 with an SMS code (P04). Registering needs the unticked-by-default consent box.

import { api, errorText } from '../api.js';
import { deviceInfo } from '../device.js';
import { h } from '../dom.js';
import { navigate } from '../nav.js';
import { currentPolicy, loadPolicy, policyAgreed, requirePolicyUpdate } from '../policy.js';
import { fillFromOutbox, outboxMark } from '../sms.js';
import { rememberMe } from '../state.js';
import { setToken } from '../store.js';
import { alertBox, field, page, setFieldError, toast, withLoading } from '../ui.js';
import { openPolicySheet } from './policy_view.js';

function validPhone(raw) {
  return /^(\+?86)?1\d{10}$/.test(raw.replace(/[\s-]/g, ''));
}

export function loginView() {
  const { el, body } = page({ title: '登录', bare: true, className: 'page--login' });
  const dev = document.body.dataset.env === 'dev';

  const phone = h('input', {
    id: 'login-phone',
    name: 'phone',
    type: 'tel',
    inputmode: 'tel',
    autocomplete: 'tel-national',
    maxlength: '20',
    placeholder: '请输入手机号',
  });
  const code = h('input', {
    id: 'login-code',
    name: 'code',
    type: 'text',
    inputmode: 'numeric',
    autocomplete: 'one-time-code',
    maxlength: '6',
    placeholder: '请输入验证码',
  });
  const sendBtn = h('button', { type: 'button', class: 'code-btn', id: 'send-code' }, '获取验证码');
  const fPhone = field({ label: '手机号', input: phone });
  fPhone.row.querySelector('.field-control').prepend(h('span', { class: 'phone-prefix', 'aria-hidden': 'true' }, '+86'));
  const fCode = field({ label: '验证码', input: code });
  fCode.row.querySelector('.field-control').append(sendBtn);

  const consent = h('input', { type: 'checkbox', id: 'login-consent', class: 'checkbox', name: 'consent' });
  const policyLink = h('a', { href: '#/policy', class: 'link', id: 'login-policy-link' }, '《汇容客隐私政策》');
  policyLink.addEventListener('click', (e) => {
    e.preventDefault(); // keep what was typed: the policy opens over the form
    openPolicySheet();
  });
  const consentRow = h(
    'div',
    { class: 'consent' },
    consent,
    h('label', { for: 'login-consent', class: 'consent-label' }, '我已阅读并同意', policyLink),
  );
  consent.addEventListener('change', () => consentRow.classList.remove('is-attention'));

  const alert = alertBox();
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block btn--lg', id: 'login-submit' }, '登录');

  let devBtn = null;
  let devHint = null;
  if (dev) {
    devBtn = h('button', { type: 'button', class: 'link-btn', id: 'dev-fill' }, '从开发发件箱填入');
    devHint = h(
      'div',
      { class: 'dev-hint' },
      h('span', { class: 'dev-tag' }, '开发模式'),
      h('span', {}, '短信不会真的发出，验证码打印在服务器控制台，也保存在开发发件箱。'),
      devBtn,
    );
  }

  const form = h(
    'form',
    { class: 'login-form', novalidate: true, 'aria-labelledby': 'login-title' },
    h('div', { class: 'login-fields' }, fPhone.row, fCode.row),
    devHint,
    alert.el,
    submit,
    consentRow,
  );

  body.append(
    h(
      'div',
      { class: 'login-hero' },
      h('span', { class: 'brand-mark brand-mark--lg', 'aria-hidden': 'true' }, '汇'),
      h('h1', { id: 'login-title', class: 'login-title', tabindex: '-1' }, '手机号登录'),
      h('p', { class: 'login-sub' }, '未注册的手机号验证后将自动注册汇容客账号'),
    ),
    form,
    h(
      'p',
      { class: 'login-foot' },
      h('a', { href: '#/contact', class: 'link' }, '联系我们'),
    ),
  );

  /* ---- 获取验证码 with a countdown ---- */
  let timer = null;
  let outboxAfter = 0; // dev mode: only texts newer than this fill the code
  function startCountdown(seconds) {
    window.clearInterval(timer);
    let left = Math.max(1, Math.ceil(seconds));
    sendBtn.disabled = true;
    const tick = () => {
      if (!sendBtn.isConnected && left < seconds) {
        window.clearInterval(timer);
        return;
      }
      if (left <= 0) {
        window.clearInterval(timer);
        sendBtn.disabled = false;
        sendBtn.textContent = '重新获取';
        return;
      }
      sendBtn.textContent = `${left} 秒后重发`;
      left -= 1;
    };
    tick();
    timer = window.setInterval(tick, 1000);
  }

  sendBtn.addEventListener('click', async () => {
    alert.clear();
    setFieldError(fPhone, null);
    const value = phone.value.trim();
    if (!validPhone(value)) {
      setFieldError(fPhone, '请输入有效的中国大陆手机号码');
      phone.focus();
      return;
    }
    const wait = await withLoading(sendBtn, async () => {
      try {
        const mark = await outboxMark(value);
        const res = await api('/auth/sms-codes', { method: 'POST', json: { phone: value }, auth: false });
        outboxAfter = mark;
        toast('验证码已发送', 'success');
        code.focus();
        return res.resend_after || 60;
      } catch (err) {
        if (err.code === 'invalid_phone') setFieldError(fPhone, err.message);
        else alert.show(errorText(err));
        return err.status === 429 && err.retryAfter && err.retryAfter <= 600 ? err.retryAfter : 0;
      }
    });
    if (wait) startCountdown(wait);
  });

  if (devBtn) {
    devBtn.addEventListener('click', () =>
      withLoading(devBtn, async () => {
        alert.clear();
        const value = phone.value.trim();
        if (!validPhone(value)) {
          setFieldError(fPhone, '请先输入手机号');
          phone.focus();
          return;
        }
        await fillFromOutbox({
          phone: value,
          pattern: /登录/,
          after: outboxAfter,
          code,
          codeField: fCode,
          alert,
          missing: '开发发件箱里还没有发往该号码的验证码，请先点击“获取验证码”。',
        });
      }),
    );
  }

  /* ---- 登录 ---- */
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.clear();
    setFieldError(fPhone, null);
    setFieldError(fCode, null);
    const phoneValue = phone.value.trim();
    const codeValue = code.value.trim();
    if (!validPhone(phoneValue)) {
      setFieldError(fPhone, '请输入有效的中国大陆手机号码');
      phone.focus();
      return;
    }
    if (!/^\d{4,8}$/.test(codeValue)) {
      setFieldError(fCode, '请输入短信验证码');
      code.focus();
      return;
    }
    await withLoading(submit, async () => {
      let policy = currentPolicy();
      if (!policy) policy = await loadPolicy().catch(() => null);
      const payload = { phone: phoneValue, code: codeValue };
      if (consent.checked && policy) payload.accept_policy_version = policy.version;
      if (policyAgreed()) payload.device = deviceInfo();
      let res;
      try {
        res = await api('/auth/sessions', { method: 'POST', json: payload, auth: false });
      } catch (err) {
        if (err.handled) return;
        if (err.code === 'policy_consent_required') {
          consentRow.classList.add('is-attention');
          alert.show('该手机号尚未注册。注册前请先勾选下方“我已阅读并同意《汇容客隐私政策》”，再点击登录。');
          consent.focus();
          const current = err.details && err.details.current_version;
          if (policy && current && current !== policy.version) loadPolicy(true).catch(() => {});
        } else if (err.code === 'invalid_code') {
          const left = err.details && err.details.attempts_left;
          setFieldError(fCode, left ? `${err.message}（还可尝试 ${left} 次）` : err.message);
          code.focus();
        } else if (err.code === 'invalid_phone') {
          setFieldError(fPhone, err.message);
        } else {
          alert.show(errorText(err));
        }
        return;
      }
      setToken(res.token);
      rememberMe(res.user);
      if (res.policy_update_required) {
        const agreed = await requirePolicyUpdate();
        if (!agreed) return;
      }
      window.clearInterval(timer);
      toast('登录成功', 'success');
      // P42: a minor still waiting for a guardian's consent goes to the screen that asks for it.
      let next = '/me';
      try {
        const guardian = await api('/me/guardian', { global: false });
        if (guardian && guardian.restricted) next = '/me/guardian';
      } catch {
        /* 我的 loads either way; any restriction is explained when it applies */
      }
      navigate(next, { replace: true });
    });
  });

  return el;
}
