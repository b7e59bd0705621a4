// Phone and SMS-code form pieces shared by the case, guardian-consent and guardian-service screens:
// inputs, the resend countdown, and (dev mode only) filling the code from the dev outbox.

import { api, errorText, retryFree } from './api.js';
import { h } from './dom.js';
import { setFieldError, toast } from './ui.js';

export function isDev() {
  return document.body.dataset.env === 'dev';
}

export function validPhone(raw) {
  return /^(\+?86)?1\d{10}$/.test(String(raw || '').replace(/[\s-]/g, ''));
}

export function phoneInput(id, placeholder = '请输入手机号') {
  return h('input', {
    id,
    type: 'tel',
    inputmode: 'tel',
    autocomplete: 'off',
    maxlength: '20',
    placeholder,
  });
}

export function codeInput(id) {
  return h('input', {
    id,
    type: 'text',
    inputmode: 'numeric',
    autocomplete: 'one-time-code',
    maxlength: '6',
    placeholder: '6 位验证码',
  });
}

const timers = new WeakMap();

/** Disable a send button for `seconds`, showing '45 秒后重发', then re-enable it as `label`. */
/** The typed code, or null after marking the field (and focusing it) when it is not 4–8 digits. */
export function typedCode(input, f, message = '请输入短信验证码') {
  const value = input.value.trim();
  if (/^\d{4,8}$/.test(value)) return value;
  setFieldError(f, message);
  input.focus();
  return null;
}

export function startCountdown(button, seconds, label = '重新获取') {
  window.clearInterval(timers.get(button));
  let left = Math.max(1, Math.ceil(seconds));
  button.disabled = true;
  const tick = () => {
    if (!button.isConnected && left < seconds) {
      window.clearInterval(timers.get(button));
      return;
    }
    if (left <= 0) {
      window.clearInterval(timers.get(button));
      button.disabled = false;
      button.textContent = label;
      return;
    }
    button.textContent = `${left} 秒后重发`;
    left -= 1;
  };
  tick();
  timers.set(button, window.setInterval(tick, 1000));
}

/** How long to wait before sending again, from a 429 (0 when it can't be told). */
export function waitFrom(err) {
  return err && err.status === 429 && err.retryAfter && err.retryAfter <= 600 ? err.retryAfter : 0;
}

/** The message for a failed code request: when the send button counts down the wait, the text
 *  does not say it again. */
export function sendErrorText(err) {
  return waitFrom(err) ? retryFree(err.message) : errorText(err);
}

/** The dev-mode hint with its 从开发发件箱填入 button; null outside dev mode. */
export function devHint(id, onFill) {
  if (!isDev()) return null;
  const button = h('button', { type: 'button', class: 'link-btn', id }, '从开发发件箱填入');
  button.addEventListener('click', onFill);
  return {
    button,
    el: h(
      'div',
      { class: 'dev-hint' },
      h('span', { class: 'dev-tag' }, '开发模式'),
      h('span', {}, '短信不会真的发出，验证码保存在开发发件箱。'),
      button,
    ),
  };
}

async function outbox(phone) {
  const res = await api(`/dev/sms-outbox?phone=${encodeURIComponent(phone)}`, { auth: false });
  return (res && res.messages) || [];
}

/**
 * Dev mode, just before a code is requested: the server time of the newest text already in the
 * outbox for `phone` (0 when none), so the fill can't pick an older, spent code. `phone` may be a
 * function resolving it, called only in dev mode. Outside dev mode: 0, and no request.
 */
export async function outboxMark(phone) {
  if (!isDev()) return 0;
  try {
    const number = typeof phone === 'function' ? await phone() : phone;
    if (!validPhone(number)) return 0;
    const [newest] = await outbox(number);
    return newest ? Date.parse(newest.sent_at) || 0 : 0;
  } catch {
    return 0;
  }
}

/**
 * The newest code sent to `phone` whose text matches `pattern` (the texts differ by purpose) and
 * that is newer than `mark` (from outboxMark), or null. The text lands just after the 202, so
 * look a few times before giving up.
 */
export async function outboxCode(phone, pattern, mark = 0) {
  const fresh = (m) => !mark || Date.parse(m.sent_at) > mark;
  for (let attempt = 0; attempt < 6; attempt += 1) {
    if (attempt) await new Promise((resolve) => window.setTimeout(resolve, 400));
    const messages = await outbox(phone);
    const hit = messages.find((m) => pattern.test(m.text) && fresh(m));
    const m = hit && /(\d{6})/.exec(hit.text);
    if (m) return m[1];
  }
  return null;
}

/** Dev mode: put the newest matching code from the dev outbox into `code`; `missing` tells the user
 *  what to do when there is none yet. */
export async function fillFromOutbox({ phone, pattern, after, code, codeField, alert, missing }) {
  try {
    const found = await outboxCode(phone, pattern, after);
    if (!found) {
      alert.show(missing);
      return;
    }
    code.value = found;
    setFieldError(codeField, null);
    toast('已从开发发件箱填入验证码');
  } catch (err) {
    alert.show(errorText(err));
  }
}
