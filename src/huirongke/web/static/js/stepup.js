// Step-up verification in place: an action answered 403 step_up_required (export, 注销账号, a
// guardian, a password, real-name) opens this dialog; the user gets an SMS code on the account's
// own phone (POST /me/step-up/sms-codes), confirms it (POST /me/step-up {code}), and the api client
// sends the action again. Resolves true once verified, false when the user closes the dialog.

import { api, errorText } from './api.js';
import { h, uid } from './dom.js';
import { maskPhone } from './format.js';
import { codeInput, typedCode, devHint, fillFromOutbox, outboxMark, sendErrorText, startCountdown, waitFrom } from './sms.js';
import { rememberMe, state } from './state.js';
import { alertBox, field, modal, setFieldError, toast, withLoading } from './ui.js';

async function ownPhone() {
  if (state.me && state.me.phone) return state.me.phone;
  try {
    return rememberMe(await api('/me', { global: false })).phone;
  } catch {
    return null;
  }
}

export function askStepUp() {
  const titleId = uid('stepup-title');
  let code = null;
  return modal(
    (close) => {
      code = codeInput('stepup-code');
      const fCode = field({ label: '验证码', input: code });
      const send = h('button', { type: 'button', class: 'code-btn', id: 'stepup-send' }, '获取验证码');
      fCode.row.querySelector('.field-control').append(send);
      const lead = h('p', { class: 'modal-text', id: `${titleId}-lead` }, '为保护您的账号安全，此操作需要先验证您的手机号。验证后 10 分钟内无需再次验证。');
      ownPhone().then((phone) => {
        if (phone) lead.textContent = `为保护您的账号安全，此操作需要先验证手机号 ${maskPhone(phone)}。验证后 10 分钟内无需再次验证。`;
      });
      const alert = alertBox();
      let mark = 0;

      send.addEventListener('click', async () => {
        alert.clear();
        const wait = await withLoading(send, async () => {
          try {
            const next = await outboxMark(ownPhone);
            const res = await api('/me/step-up/sms-codes', { method: 'POST', stepUp: false });
            mark = next;
            toast('验证码已发送', 'success');
            code.focus();
            return (res && res.resend_after) || 60;
          } catch (err) {
            if (err.handled) return 0;
            alert.show(sendErrorText(err));
            return waitFrom(err);
          }
        });
        if (wait) startCountdown(send, wait);
      });

      const dev = devHint('stepup-dev-fill', () =>
        withLoading(dev.button, async () => {
          alert.clear();
          const phone = await ownPhone();
          if (!phone) {
            alert.show('无法读取本账号的手机号');
            return;
          }
          await fillFromOutbox({
            phone,
            pattern: /\d{6}/,
            after: mark,
            code,
            codeField: fCode,
            alert,
            missing: '开发发件箱里还没有新的验证码，请先点击“获取验证码”。',
          });
        }),
      );

      const cancel = h('button', { type: 'button', class: 'btn btn--ghost', onclick: () => close(false) }, '取消');
      const submit = h('button', { type: 'submit', class: 'btn btn--primary', id: 'stepup-submit' }, '验证并继续');
      const form = h(
        'form',
        {
          class: 'modal stepup',
          role: 'dialog',
          'aria-modal': 'true',
          'aria-labelledby': titleId,
          'aria-describedby': `${titleId}-lead`,
          id: 'stepup-dialog',
          novalidate: true,
        },
        h('h2', { class: 'modal-title', id: titleId }, '验证身份'),
        lead,
        h('div', { class: 'login-fields login-fields--card' }, fCode.row),
        dev && dev.el,
        alert.el,
        h('div', { class: 'modal-actions' }, cancel, submit),
      );
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        alert.clear();
        setFieldError(fCode, null);
        const value = typedCode(code, fCode);
        if (value === null) return;
        await withLoading(submit, async () => {
          try {
            await api('/me/step-up', { method: 'POST', json: { code: value }, stepUp: false });
            toast('验证成功', 'success');
            close(true);
          } catch (err) {
            if (err.handled) {
              close(false);
              return;
            }
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
    },
    { initialFocus: () => document.getElementById('stepup-send') },
  );
}
