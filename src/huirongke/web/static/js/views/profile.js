// 个人资料: nickname, avatar, gender, birthday, tags, region (PATCH /me) and real-name (P32).

import { api, errorText } from '../api.js';
import { h, icon, uid } from '../dom.js';
import { GENDERS, REAL_NAME_STATUS, formatDateTime } from '../format.js';
import { rememberMe } from '../state.js';
import { navigate } from '../nav.js';
import { alertBox, avatar, card, cell, cellGroup, field, loadInto, page, setFieldError, toast, withLoading } from '../ui.js';

const MAX_TAGS = 10;
const MAX_TAG_LEN = 12;
const MAX_AVATAR_BYTES = 5 * 1024 * 1024;
const LABELS = { nickname: '昵称', gender: '性别', birthday: '生日', tags: '标签', region: '地区', avatar_media_id: '头像' };
const FIELD_BY_CODE = { invalid_nickname: 'nickname', invalid_birthday: 'birthday', invalid_tag: 'tags' };
const FIELD_BY_LABEL = { 昵称: 'nickname', 标签: 'tags', 地区: 'region' };

function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** Which form fields an API error points at. */
function errorFields(err) {
  if (FIELD_BY_CODE[err.code]) return [FIELD_BY_CODE[err.code]];
  const d = err.details || {};
  if (d.field && FIELD_BY_LABEL[d.field]) return [FIELD_BY_LABEL[d.field]];
  if (Array.isArray(d.fields)) return [...new Set(d.fields.map((f) => String(f.field).split('.')[0]))];
  return [];
}

function avatarSection(state) {
  const holder = h('span', { class: 'avatar-holder' }, avatar(state.me.avatar_url, state.me.nickname, 'xl'));
  const input = h('input', {
    type: 'file',
    id: 'avatar-file',
    name: 'file',
    accept: 'image/jpeg,image/png,image/webp,image/gif',
    class: 'sr-only',
  });
  const label = h('label', { for: 'avatar-file', class: 'btn btn--outline btn--sm', id: 'avatar-label' }, icon('camera'), '更换头像');
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    if (file.size > MAX_AVATAR_BYTES) {
      toast('图片不能超过 5 MB', 'error');
      input.value = '';
      return;
    }
    input.disabled = true;
    await withLoading(label, async () => {
      try {
        const form = new FormData();
        form.append('file', file);
        const media = await api('/media', { method: 'POST', form });
        const me = rememberMe(await api('/me', { method: 'PATCH', json: { avatar_media_id: media.id } }));
        state.me = me;
        holder.replaceChildren(avatar(me.avatar_url || media.url, me.nickname, 'xl'));
        toast('头像已更新', 'success');
      } catch (err) {
        if (!err.handled) toast(errorText(err), 'error');
      } finally {
        input.value = '';
        input.disabled = false;
      }
    });
  });
  return h(
    'section',
    { class: 'card avatar-card', 'aria-label': '头像' },
    holder,
    h('div', { class: 'avatar-actions' }, input, label, h('p', { class: 'field-hint' }, '支持 JPG、PNG、WebP，不超过 5 MB')),
  );
}

function genderControl(value) {
  const name = uid('gender');
  const options = [...GENDERS, ['', '不填']];
  const group = h(
    'div',
    { class: 'segmented', role: 'radiogroup', 'aria-labelledby': `${name}-label`, id: 'profile-gender' },
    options.map(([v, label]) => {
      const id = `${name}-${v || 'none'}`;
      return h(
        'span',
        { class: 'segmented-item' },
        h('input', { type: 'radio', name, id, value: v, checked: (value || '') === v, class: 'sr-only' }),
        h('label', { for: id }, label),
      );
    }),
  );
  const error = h('p', { class: 'field-error', hidden: true });
  const row = h('div', { class: 'field' }, h('span', { class: 'field-label', id: `${name}-label` }, '性别'), h('div', { class: 'field-control' }, group), error);
  return {
    row,
    input: group,
    error,
    value: () => {
      const checked = group.querySelector('input:checked');
      return checked && checked.value ? checked.value : null;
    },
  };
}

function tagsControl(initial) {
  let tags = [...initial];
  const chips = h('ul', { class: 'chips', id: 'profile-tags', 'aria-label': '已添加的标签' });
  const counter = h('span', { class: 'field-count' });
  const input = h('input', { type: 'text', id: 'profile-tag-input', maxlength: String(MAX_TAG_LEN), placeholder: '输入标签，如：保险顾问', enterkeyhint: 'done' });
  const addBtn = h('button', { type: 'button', class: 'btn btn--outline btn--sm', id: 'profile-tag-add' }, icon('plus'), '添加');
  const error = h('p', { class: 'field-error', id: 'profile-tag-input-error', hidden: true });
  input.setAttribute('aria-describedby', error.id);
  const addRow = h('div', { class: 'tag-add' }, input, addBtn);
  const ctl = {
    row: null,
    input,
    error,
    value: () => tags.slice(),
    render() {
      chips.replaceChildren(
        ...tags.map((t) =>
          h(
            'li',
            { class: 'chip' },
            h('span', {}, t),
            h(
              'button',
              {
                type: 'button',
                class: 'chip-x',
                'aria-label': `删除标签“${t}”`,
                onclick: () => {
                  tags = tags.filter((x) => x !== t);
                  ctl.render();
                  input.focus();
                },
              },
              icon('close'),
            ),
          ),
        ),
      );
      if (!tags.length) chips.append(h('li', { class: 'chips-empty' }, '还没有标签'));
      counter.textContent = `${tags.length}/${MAX_TAGS}`;
      addRow.hidden = tags.length >= MAX_TAGS;
    },
    /** Add what is typed; returns false (with a message) when it can't be added. */
    add() {
      const t = input.value.trim();
      setFieldError(ctl, null);
      if (!t) return true;
      if (Array.from(t).length > MAX_TAG_LEN) {
        setFieldError(ctl, `每个标签最多 ${MAX_TAG_LEN} 个字`);
        return false;
      }
      if (tags.length >= MAX_TAGS) {
        setFieldError(ctl, `最多添加 ${MAX_TAGS} 个标签`);
        return false;
      }
      if (!tags.includes(t)) tags.push(t);
      input.value = '';
      ctl.render();
      return true;
    },
    reset(next) {
      tags = [...next];
      ctl.render();
    },
  };
  addBtn.addEventListener('click', () => {
    ctl.add();
    input.focus();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.isComposing) {
      e.preventDefault();
      ctl.add();
    }
  });
  ctl.row = h(
    'div',
    { class: 'field field--stacked' },
    h('div', { class: 'field-head' }, h('label', { class: 'field-label', for: input.id }, '个人标签'), counter),
    chips,
    addRow,
    error,
  );
  ctl.render();
  return ctl;
}

function basicsSection(state) {
  const { me } = state;
  const nickname = field({
    label: '昵称',
    input: h('input', { type: 'text', id: 'profile-nickname', name: 'nickname', maxlength: '20', autocomplete: 'nickname', placeholder: '1–20 个字', value: me.nickname || '' }),
  });
  const gender = genderControl(me.gender);
  const birthday = field({
    label: '生日',
    input: h('input', { type: 'date', id: 'profile-birthday', name: 'birthday', min: '1900-01-01', max: today(), value: me.birthday || '' }),
  });
  const region = field({
    label: '地区',
    input: h('input', { type: 'text', id: 'profile-region', name: 'region', maxlength: '32', autocomplete: 'off', placeholder: '如：福建省厦门市', value: me.region || '' }),
  });
  const tags = tagsControl(me.tags || []);
  const fields = { nickname, gender, birthday, region, tags };
  const alert = alertBox();
  const save = h('button', { type: 'submit', class: 'btn btn--primary btn--block btn--lg', id: 'profile-save' }, '保存');

  const form = h(
    'form',
    { class: 'profile-form', novalidate: true, 'aria-label': '基本资料' },
    card('基本资料', h('p', { class: 'card-note' }, '除昵称外均为选填，填不填由您决定。'), nickname.row, gender.row, birthday.row, region.row, tags.row),
    alert.el,
    save,
  );

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.clear();
    Object.values(fields).forEach((f) => setFieldError(f, null));
    if (!tags.add()) return;
    const nick = nickname.input.value.trim();
    const patch = {
      gender: gender.value(),
      birthday: birthday.input.value || null,
      tags: tags.value(),
      region: region.input.value.trim() || null,
    };
    if (nick) {
      if (Array.from(nick).length > 20) {
        setFieldError(nickname, '昵称需为 1–20 个字符');
        nickname.input.focus();
        return;
      }
      patch.nickname = nick;
    } else if (state.me.nickname) {
      setFieldError(nickname, '昵称不能为空（1–20 个字符）');
      nickname.input.focus();
      return;
    }
    const birthdayBefore = state.me.birthday || null;
    await withLoading(save, async () => {
      try {
        // A minor changing the birthday gets the reason in place (guardian: false), not a redirect.
        state.me = rememberMe(await api('/me', { method: 'PATCH', json: patch, guardian: false }));
        nickname.input.value = state.me.nickname || '';
        region.input.value = state.me.region || '';
        tags.reset(state.me.tags || []);
        toast('资料已保存', 'success');
        if ((state.me.birthday || null) !== birthdayBefore) await checkGuardian();
      } catch (err) {
        if (err.handled) return;
        if (err.code === 'guardian_consent_required') {
          setFieldError(birthday, err.message);
          birthday.input.focus();
          return;
        }
        const names = errorFields(err);
        let message = errorText(err);
        if (err.code === 'validation_error' && names.length) message = `${message}：${names.map((n) => LABELS[n] || n).join('、')}`;
        alert.show(message);
        names.forEach((n) => setFieldError(fields[n], err.code === 'validation_error' ? `${LABELS[n] || n}格式不正确` : err.message));
        const first = names.map((n) => fields[n]).find(Boolean);
        if (first && first.input.focus) first.input.focus();
      }
    });
  });
  return form;
}

/** P42: a birthday under 18 restricts the account until a guardian consents: go and ask. */
async function checkGuardian() {
  try {
    const status = await api('/me/guardian');
    if (status.restricted) {
      toast('您未满 18 周岁，需要监护人同意后才能继续使用', 'info', 3000);
      navigate('/me/guardian');
    }
  } catch {
    /* the restriction is explained when it applies */
  }
}

function realNameSection(state) {
  const section = h('div', { id: 'real-name' });
  const render = () => {
    const rn = state.me.real_name;
    const content = [];
    if (rn) {
      const [label, tone] = REAL_NAME_STATUS[rn.status] || [rn.status, 'pending'];
      content.push(
        h(
          'dl',
          { class: 'kv' },
          h('div', {}, h('dt', {}, '认证状态'), h('dd', {}, h('span', { class: `badge badge--${tone}`, id: 'real-name-status' }, label))),
          h('div', {}, h('dt', {}, '姓名'), h('dd', {}, rn.name_masked)),
          h('div', {}, h('dt', {}, '身份证号'), h('dd', {}, rn.id_number_masked)),
          h('div', {}, h('dt', {}, '提交时间'), h('dd', {}, formatDateTime(rn.submitted_at))),
        ),
      );
    } else {
      content.push(h('p', { class: 'card-note' }, '完成实名认证后，您的主页会显示“已实名”标识。'));
    }
    if (rn && rn.status === 'verified') {
      content.push(h('p', { class: 'locked-note', id: 'real-name-locked' }, icon('lock'), '已认证，不可更改'));
    } else {
      if (rn && rn.status === 'pending') content.push(h('p', { class: 'card-note' }, '正在审核中。如信息填写有误，可重新提交。'));
      if (rn && rn.status === 'rejected') content.push(h('p', { class: 'card-note card-note--bad' }, '认证未通过，请核对后重新提交。'));
      content.push(realNameForm(state, render));
    }
    section.replaceChildren(card('实名认证', ...content));
  };
  render();
  return section;
}

function realNameForm(state, rerender) {
  const name = field({ label: '真实姓名', input: h('input', { type: 'text', id: 'rn-name', maxlength: '30', autocomplete: 'name', placeholder: '与身份证一致' }) });
  const idNumber = field({
    label: '身份证号',
    input: h('input', { type: 'text', id: 'rn-id', maxlength: '18', autocomplete: 'off', 'data-private': true, autocapitalize: 'characters', spellcheck: 'false', placeholder: '18 位身份证号码' }),
  });
  const consent = h('input', { type: 'checkbox', id: 'rn-consent', class: 'checkbox' });
  const consentRow = h(
    'div',
    { class: 'consent consent--box' },
    consent,
    h('label', { for: 'rn-consent', class: 'consent-label' }, '我单独同意汇容客为完成实名认证处理我的姓名和身份证号码。身份证号码属于敏感个人信息，仅用于实名认证，加密保存。'),
  );
  const alert = alertBox();
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block', id: 'rn-submit' }, state.me.real_name ? '重新提交' : '提交认证');
  const form = h('form', { class: 'rn-form', novalidate: true, 'aria-label': '实名认证信息' }, name.row, idNumber.row, consentRow, alert.el, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.clear();
    setFieldError(name, null);
    setFieldError(idNumber, null);
    const n = name.input.value.trim();
    const id = idNumber.input.value.trim().toUpperCase();
    if (Array.from(n).length < 2) {
      setFieldError(name, '请填写身份证上的真实姓名');
      name.input.focus();
      return;
    }
    if (!/^\d{17}[\dX]$/.test(id)) {
      setFieldError(idNumber, '请输入 18 位身份证号码');
      idNumber.input.focus();
      return;
    }
    if (!consent.checked) {
      alert.show('请先勾选同意汇容客为实名认证处理您的身份信息');
      consent.focus();
      return;
    }
    await withLoading(submit, async () => {
      try {
        const send = () => api('/me/real-name', { method: 'POST', json: { name: n, id_number: id } });
        let rn;
        try {
          rn = await send();
        } catch (err) {
          if (err.code !== 'consent_required' || (err.details || {}).purpose !== 'real_name') throw err;
          // The ticked box is the user's separate consent (R02): record it, then submit again.
          await api('/privacy/consents/real_name', { method: 'PUT', json: { granted: true } });
          rn = await send();
        }
        state.me = rememberMe({ ...state.me, real_name: rn });
        toast('已提交，请等待审核', 'success');
        rerender();
      } catch (err) {
        if (err.handled) return;
        if (err.code === 'invalid_name') setFieldError(name, err.message);
        else if (err.code === 'invalid_id_number') setFieldError(idNumber, err.message);
        else alert.show(errorText(err));
      }
    });
  });
  return form;
}

export function profileView() {
  const { el, body } = page({ title: '个人资料', back: '/me' });
  loadInto(
    body,
    async () => rememberMe(await api('/me')),
    (me) => {
      const state = { me };
      return [
        avatarSection(state),
        basicsSection(state),
        realNameSection(state),
        cellGroup(cell({ href: `#/users/${encodeURIComponent(me.id)}`, label: '查看我的公开主页', iconName: 'eye', id: 'public-profile-link' })),
      ];
    },
  );
  return el;
}
