// 登录 / 注册 (P04). The SMS code is the default; 密码登录 switches to the password an account set
// in 设置登录密码 (it cannot register). A new number registers, which needs the unticked-by-default
// policy box and an age declaration (「我已年满18周岁」 or the birth year and month), asked only once
// the server says the number is new. After signing in, the screen the user was sent away from
// (a deep link, an expired session) opens again, with what they had typed.

import { api, errorText } from '../api.js';
import { deviceInfo } from '../device.js';
import { h, uid } from '../dom.js';
import { navigate } from '../nav.js';
import { currentPolicy, loadPolicy, policyAgreed, requirePolicyUpdate } from '../policy.js';
import { restoreForms, takeReturn } from '../resume.js';
import { codeInput, devHint, fillFromOutbox, outboxMark, sendErrorText, startCountdown, validPhone, waitFrom } from '../sms.js';
import { rememberMe } from '../state.js';
import { setToken } from '../store.js';
import { alertBox, field, page, setFieldError, toast, withLoading } from '../ui.js';
import { openPolicySheet } from './policy_view.js';

const TYPED_PHONE = 'hrk.login.phone'; // this tab only: the number survives leaving the screen

function typedPhone(value) {
  try {
    if (value === undefined) return window.sessionStorage.getItem(TYPED_PHONE) || '';
    if (value) window.sessionStorage.setItem(TYPED_PHONE, value);
    else window.sessionStorage.removeItem(TYPED_PHONE);
  } catch {
    /* storage unavailable */
  }
  return '';
}

/** 「我已年满18周岁」 or a birth year and month: shown when a new number registers. */
function ageQuestion() {
  const legendId = uid('age');
  const adult = h('input', { type: 'radio', name: 'login-age', value: 'adult', id: 'age-adult', class: 'checkbox' });
  const byMonth = h('input', { type: 'radio', name: 'login-age', value: 'month', id: 'age-by-month', class: 'checkbox' });
  const now = new Date();
  const year = h(
    'select',
    { id: 'age-year', 'aria-label': '出生年份' },
    h('option', { value: '' }, '年份'),
    Array.from({ length: 101 }, (_, i) => now.getFullYear() - i).map((y) => h('option', { value: String(y) }, `${y} 年`)),
  );
  const month = h(
    'select',
    { id: 'age-month', 'aria-label': '出生月份' },
    h('option', { value: '' }, '月份'),
    Array.from({ length: 12 }, (_, i) => i + 1).map((m) => h('option', { value: String(m).padStart(2, '0') }, `${m} 月`)),
  );
  const picker = h('div', { class: 'age-picker', hidden: true }, year, month);
  const error = h('p', { class: 'field-error', id: 'login-age-error', hidden: true });
  const el = h(
    'fieldset',
    { class: 'age-question', id: 'login-age', hidden: true, 'aria-describedby': 'login-age-error' },
    h('legend', { class: 'age-legend', id: legendId }, '注册新账号，请确认您的年龄'),
    h('label', { class: 'choice', for: 'age-adult' }, adult, h('span', {}, '我已年满18周岁')),
    h('label', { class: 'choice', for: 'age-by-month' }, byMonth, h('span', {}, '填写出生年月')),
    picker,
    h('p', { class: 'field-hint' }, '未满18周岁的用户需要监护人同意后才能使用全部功能。'),
    error,
  );
  const sync = () => {
    picker.hidden = !byMonth.checked;
    error.hidden = true;
  };
  [adult, byMonth, year, month].forEach((c) => c.addEventListener('change', sync));
  const showError = (message, focus) => {
    error.textContent = message;
    error.hidden = false;
    focus.focus();
    return null;
  };
  return {
    el,
    wanted: false, // the server said the number is new
    show() {
      el.hidden = false;
    },
    get shown() {
      return !el.hidden;
    },
    /** The age object to send, or null after saying what is missing. */
    value() {
      if (adult.checked) return { adult: true };
      if (!byMonth.checked) return showError('请确认您的年龄', adult);
      if (!year.value) return showError('请选择出生年份', year);
      if (!month.value) return showError('请选择出生月份', month);
      const chosen = `${year.value}-${month.value}`;
      const thisMonth = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}`;
      if (chosen > thisMonth) return showError('出生年月不能晚于本月', month);
      return { birth_month: chosen };
    },
    error(message) {
      showError(message, byMonth.checked ? year : adult);
    },
  };
}

/** Where to go once signed in: back where the user was sent away from, else 我的 (or the minor's screen). */
async function landingPath() {
  const back = takeReturn();
  if (back) return back;
  // P42: a minor still waiting for a guardian's consent goes to the screen that asks for it.
  try {
    const guardian = await api('/me/guardian', { global: false });
    if (guardian && guardian.restricted) return '/me/guardian';
  } catch {
    /* 我的 loads either way; any restriction is explained when it applies */
  }
  return '/me';
}

export function loginView() {
  const { el, body } = page({ title: '登录', bare: true, className: 'page--login' });
  let mode = 'sms'; // or 'password'

  const phone = h('input', {
    id: 'login-phone',
    name: 'phone',
    type: 'tel',
    inputmode: 'tel',
    autocomplete: 'tel-national',
    maxlength: '20',
    placeholder: '请输入手机号',
    value: typedPhone(),
  });
  phone.addEventListener('input', () => typedPhone(phone.value.trim()));
  const code = codeInput('login-code');
  code.placeholder = '请输入验证码';
  const sendBtn = h('button', { type: 'button', class: 'code-btn', id: 'send-code' }, '获取验证码');
  const fPhone = field({ label: '手机号', input: phone });
  fPhone.row.querySelector('.field-control').prepend(h('span', { class: 'phone-prefix', 'aria-hidden': 'true' }, '+86'));
  const fCode = field({ label: '验证码', input: code });
  fCode.row.querySelector('.field-control').append(sendBtn);
  const password = h('input', {
    id: 'login-password',
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    maxlength: '128',
    placeholder: '请输入登录密码',
  });
  const fPassword = field({ label: '密码', input: password });
  fPassword.row.hidden = true;

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
  const age = ageQuestion();

  const alert = alertBox();
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block btn--lg', id: 'login-submit' }, '登录');
  const modeBtn = h('button', { type: 'button', class: 'link-btn login-mode', id: 'login-mode' }, '密码登录');

  let outboxAfter = 0; // dev mode: only texts newer than this fill the code
  const dev = devHint('dev-fill', () =>
    withLoading(dev.button, async () => {
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

  const form = h(
    'form',
    { class: 'login-form', novalidate: true, 'aria-labelledby': 'login-title' },
    h('div', { class: 'login-fields' }, fPhone.row, fCode.row, fPassword.row),
    dev && dev.el,
    age.el,
    alert.el,
    submit,
    consentRow,
    h('p', { class: 'login-switch' }, modeBtn),
  );

  const title = h('h1', { id: 'login-title', class: 'login-title', tabindex: '-1' }, '手机号登录');
  const sub = h('p', { class: 'login-sub' }, '未注册的手机号验证后将自动注册汇容客账号');
  body.append(
    h('div', { class: 'login-hero' }, h('span', { class: 'brand-mark brand-mark--lg', 'aria-hidden': 'true' }, '汇'), title, sub),
    form,
    h('p', { class: 'login-foot' }, h('a', { href: '#/contact', class: 'link' }, '联系我们')),
  );

  const setMode = (next) => {
    mode = next;
    const pw = mode === 'password';
    alert.clear();
    [fPhone, fCode, fPassword].forEach((f) => setFieldError(f, null));
    fCode.row.hidden = pw;
    fPassword.row.hidden = !pw;
    if (dev) dev.el.hidden = pw;
    consentRow.hidden = pw; // a password signs in to an account that exists: nothing to agree to here
    age.el.hidden = pw || !age.wanted;
    title.textContent = pw ? '密码登录' : '手机号登录';
    sub.textContent = pw ? '使用您在“设置登录密码”中设置的密码登录' : '未注册的手机号验证后将自动注册汇容客账号';
    modeBtn.textContent = pw ? '验证码登录' : '密码登录';
    (phone.value.trim() ? (pw ? password : code) : phone).focus();
  };
  modeBtn.addEventListener('click', () => setMode(mode === 'sms' ? 'password' : 'sms'));

  /* ---- 获取验证码 with a countdown ---- */
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
        // The device lets the server recognise a phone that signed in here before (never challenged).
        const json = policyAgreed() ? { phone: value, device: deviceInfo() } : { phone: value };
        const res = await api('/auth/sms-codes', { method: 'POST', json, auth: false });
        outboxAfter = mark;
        toast('验证码已发送', 'success');
        code.focus();
        return res.resend_after || 60;
      } catch (err) {
        if (err.code === 'invalid_phone') setFieldError(fPhone, err.message);
        else alert.show(sendErrorText(err));
        return waitFrom(err);
      }
    });
    if (wait) startCountdown(sendBtn, wait);
  });

  /** The sign-up step: the server said the number is new. */
  let signUpPhone = null;
  const askSignUp = () => {
    signUpPhone = phone.value.trim();
    age.wanted = true;
    age.show();
    submit.textContent = '注册并登录';
  };
  // Another number: whether it is new is not known any more.
  phone.addEventListener('input', () => {
    if (!age.wanted || phone.value.trim() === signUpPhone) return;
    age.wanted = false;
    age.el.hidden = true;
    submit.textContent = '登录';
  });

  const signedIn = async (res) => {
    typedPhone(null);
    setToken(res.token);
    rememberMe(res.user);
    if (res.policy_update_required) {
      const agreed = await requirePolicyUpdate();
      if (!agreed) return;
    }
    toast(res.user && res.user.new_user ? '注册成功' : '登录成功', 'success');
    const next = await landingPath();
    navigate(next, { replace: true });
    restoreForms(next, res.user && res.user.id);
  };

  const failed = (err) => {
    if (err.handled) return;
    if (err.code === 'policy_consent_required') {
      askSignUp();
      consentRow.classList.add('is-attention');
      alert.show('该手机号尚未注册。注册前请先勾选下方“我已阅读并同意《汇容客隐私政策》”并确认您的年龄，再点击“注册并登录”。');
      consent.focus();
      const current = err.details && err.details.current_version;
      const policy = currentPolicy();
      if (policy && current && current !== policy.version) loadPolicy(true).catch(() => {});
    } else if (err.code === 'age_required') {
      askSignUp();
      alert.show('该手机号尚未注册。注册前请确认您的年龄。');
      age.error('请确认您的年龄');
    } else if (err.code === 'invalid_birth_month') {
      askSignUp();
      age.error(err.message);
    } else if (err.code === 'invalid_code') {
      const left = err.details && err.details.attempts_left;
      setFieldError(fCode, left ? `${err.message}（还可尝试 ${left} 次）` : err.message);
      code.focus();
    } else if (err.code === 'invalid_credentials') {
      setFieldError(fPassword, err.message);
      password.focus();
    } else if (err.code === 'invalid_phone') {
      setFieldError(fPhone, err.message);
      phone.focus();
    } else {
      alert.show(errorText(err));
    }
  };

  /* ---- 登录 ---- */
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.clear();
    [fPhone, fCode, fPassword].forEach((f) => setFieldError(f, null));
    const phoneValue = phone.value.trim();
    if (!validPhone(phoneValue)) {
      setFieldError(fPhone, '请输入有效的中国大陆手机号码');
      phone.focus();
      return;
    }
    const payload = { phone: phoneValue };
    if (mode === 'password') {
      if (!password.value) {
        setFieldError(fPassword, '请输入登录密码');
        password.focus();
        return;
      }
      payload.password = password.value;
    } else {
      const codeValue = code.value.trim();
      if (!/^\d{4,8}$/.test(codeValue)) {
        setFieldError(fCode, '请输入短信验证码');
        code.focus();
        return;
      }
      payload.code = codeValue;
      if (age.wanted && age.shown) {
        const declared = age.value();
        if (!declared) return;
        payload.age = declared;
      }
    }
    await withLoading(submit, async () => {
      let policy = currentPolicy();
      if (!policy) policy = await loadPolicy().catch(() => null);
      if (mode === 'sms' && consent.checked && policy) payload.accept_policy_version = policy.version;
      if (policyAgreed()) payload.device = deviceInfo();
      let res;
      try {
        res = await api('/auth/sessions', { method: 'POST', json: payload, auth: false });
      } catch (err) {
        failed(err);
        return;
      }
      await signedIn(res);
    });
  });

  return el;
}
