// 设置登录密码: PUT /me/password {password, current_password?, sign_out_others?}. Needs a recent
// step-up verification, which api.js asks for in place.

import { api, errorText } from '../api.js';
import { h } from '../dom.js';
import { goBack } from '../nav.js';
import { rememberMe } from '../state.js';
import { alertBox, card, field, loadInto, page, setFieldError, toast, withLoading } from '../ui.js';

export function passwordView() {
  const { el, body } = page({ title: '设置登录密码', back: '/settings/security' });
  loadInto(
    body,
    async () => rememberMe(await api('/me')),
    (me) => {
      const current = me.has_password
        ? field({ label: '当前密码', input: h('input', { type: 'password', id: 'pw-current', autocomplete: 'current-password', maxlength: '128' }) })
        : null;
      const next = field({
        label: '新密码',
        input: h('input', { type: 'password', id: 'pw-new', autocomplete: 'new-password', maxlength: '128', placeholder: '至少 8 位，含字母和数字' }),
      });
      const again = field({ label: '确认新密码', input: h('input', { type: 'password', id: 'pw-again', autocomplete: 'new-password', maxlength: '128' }) });
      // After a password change, other devices may still be signed in: offer to end those sessions.
      const others = h('input', { type: 'checkbox', id: 'pw-sign-out-others', class: 'checkbox', name: 'sign_out_others' });
      const othersRow = h(
        'div',
        { class: 'consent pw-others' },
        others,
        h('label', { for: 'pw-sign-out-others', class: 'consent-label' }, '同时退出其他设备上的登录（本机保持登录）'),
      );
      const alert = alertBox();
      const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block btn--lg', id: 'pw-submit' }, '保存密码');
      // Lets password managers pair the new password with the account (not shown).
      const username = h('input', { type: 'text', name: 'username', autocomplete: 'username', value: me.phone || '', readonly: true, hidden: true });
      const form = h(
        'form',
        { novalidate: true, 'aria-label': '登录密码' },
        username,
        card(
          me.has_password ? '修改登录密码' : '设置登录密码',
          h('p', { class: 'card-note' }, '设置后可以用手机号和密码登录。密码至少 8 位，需同时包含字母和数字。'),
          current && current.row,
          next.row,
          again.row,
          othersRow,
        ),
        alert.el,
        submit,
      );
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        alert.clear();
        [current, next, again].forEach((f) => setFieldError(f, null));
        const pw = next.input.value;
        if (current && !current.input.value) {
          setFieldError(current, '请输入当前密码');
          current.input.focus();
          return;
        }
        if (pw.length < 8 || /^\d+$/.test(pw) || /^[A-Za-z]+$/.test(pw)) {
          setFieldError(next, '密码至少 8 位，需同时包含字母和数字');
          next.input.focus();
          return;
        }
        if (pw !== again.input.value) {
          setFieldError(again, '两次输入的密码不一致');
          again.input.focus();
          return;
        }
        const payload = { password: pw };
        if (current) payload.current_password = current.input.value;
        if (others.checked) payload.sign_out_others = true;
        await withLoading(submit, async () => {
          try {
            await api('/me/password', { method: 'PUT', json: payload });
            const done = me.has_password ? '登录密码已修改' : '登录密码已设置';
            toast(others.checked ? `${done}，其他设备已退出登录` : done, 'success');
            goBack('/settings/security'); // back to where the user came from, not a new entry
          } catch (err) {
            if (err.handled) return;
            if (err.code === 'invalid_credentials' || err.code === 'current_password_required') setFieldError(current, err.message);
            else if (err.code === 'weak_password') setFieldError(next, err.message);
            else alert.show(errorText(err));
          }
        });
      });
      return form;
    },
  );
  return el;
}
