// 联系我们: the hotline (from the body's data-hotline), and for a signed-in user a form to submit a
// case (contact, complaint, deletion with its ground, correction) confirmed by an SMS code.
// Entries to 我的申请 and to 监护人服务 (the guardian's page, no account needed).

import { api, errorText } from '../api.js';
import { h, icon, uid } from '../dom.js';
import { maskPhone } from '../format.js';
import { rerender } from '../nav.js';
import { caseAcceptedCard, caseVerifyBlock, ownPhone } from '../cases.js';
import { outboxMark } from '../sms.js';
import { getToken } from '../store.js';
import { alertBox, card, cell, cellGroup, field, loadInto, page, setFieldError, withLoading } from '../ui.js';

const DEFAULT_HOTLINE = '400-0000-690';

// The order and short labels shown; the server's /privacy/case-kinds says which kinds exist.
const KINDS = [
  ['contact', '联系我们', '请描述您想咨询的问题'],
  ['complaint', '投诉举报', '请描述您要投诉或举报的情况，越具体越便于我们处理'],
  ['deletion', '删除个人信息', '请说明希望我们删除哪些个人信息'],
  ['correction', '更正个人信息', '请说明哪项信息有误，以及正确的内容'],
];
const MIN_LEN = 5;
const MAX_LEN = 2000;

function hotlineCard(hotline) {
  const tel = `tel:${hotline.replace(/[^\d+]/g, '')}`;
  return h(
    'section',
    { class: 'card contact-card', 'aria-labelledby': 'contact-title' },
    h('span', { class: 'contact-icon' }, icon('headset')),
    h('h2', { id: 'contact-title', class: 'contact-title' }, '客服与投诉热线'),
    h('a', { class: 'hotline', href: tel, id: 'hotline' }, hotline),
    h('a', { class: 'btn btn--primary btn--block', href: tel }, icon('phone'), '拨打热线'),
  );
}

function promiseCard(hotline) {
  return card(
    '我们的承诺',
    h(
      'ul',
      { class: 'promise-list' },
      h('li', {}, '查阅、更正、删除个人信息，撤回授权或注销账号等请求，都可以在线提交或通过热线提出。'),
      h('li', {}, '为保护您的账号，我们会先核验您的身份；核验通过后 15 天内给您答复，最迟 15 个工作日内办理完毕。'),
      h('li', {}, `投诉举报热线：${hotline}。每一件投诉都会登记在案并持续跟踪，直到处理完毕。`),
      h('li', {}, '对处理结果不满意的，您可以向有关主管部门投诉，也可以依法向人民法院起诉。'),
    ),
  );
}

function kindControl(kinds, onChange) {
  const name = uid('kind');
  const group = h(
    'div',
    { class: 'segmented', role: 'radiogroup', 'aria-labelledby': `${name}-label`, id: 'case-kind' },
    KINDS.filter(([key]) => key in kinds).map(([key, label], i) => {
      const id = `case-kind-${key}`;
      const input = h('input', { type: 'radio', name, id, value: key, checked: i === 0, class: 'sr-only' });
      input.addEventListener('change', onChange);
      return h('span', { class: 'segmented-item' }, input, h('label', { for: id }, label));
    }),
  );
  return {
    row: h('div', { class: 'field field--stacked' }, h('span', { class: 'field-label', id: `${name}-label` }, '类型'), h('div', { class: 'field-control' }, group)),
    value: () => {
      const checked = group.querySelector('input:checked');
      return checked ? checked.value : null;
    },
  };
}

function caseForm(kinds, grounds, onOpened) {
  const kind = kindControl(kinds, () => sync());
  const groundSelect = h(
    'select',
    { id: 'case-ground', name: 'ground', required: true },
    h('option', { value: '', disabled: true, selected: true }, '请选择删除理由'),
    Object.entries(grounds).map(([key, label]) => h('option', { value: key }, label)),
  );
  const ground = field({ label: '删除理由', input: groundSelect, stacked: true, hint: '依照隐私政策，出现以下任一情况时您可以要求删除' });
  const text = h('textarea', { id: 'case-description', name: 'description', rows: '5', maxlength: String(MAX_LEN) });
  const counter = h('span', { class: 'field-count', id: 'case-count' }, `0/${MAX_LEN}`);
  const description = field({ label: '问题描述', input: text, stacked: true });
  description.row.querySelector('.field-label').replaceWith(h('div', { class: 'field-head' }, h('label', { class: 'field-label', for: text.id }, '问题描述'), counter));
  const lead = h('p', { class: 'card-note' }, '提交后，我们会向您的手机发送验证码，核验是您本人提交。');
  ownPhone()
    .then((phone) => {
      if (phone) lead.textContent = `提交后，我们会向 ${maskPhone(phone)} 发送验证码，核验是您本人提交。`;
    })
    .catch(() => {});
  const alert = alertBox();
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block', id: 'case-submit' }, '提交');

  function sync() {
    const k = kind.value();
    ground.row.hidden = k !== 'deletion';
    const hit = KINDS.find(([key]) => key === k);
    text.placeholder = hit ? hit[2] : '';
  }
  text.addEventListener('input', () => {
    counter.textContent = `${Array.from(text.value.trim()).length}/${MAX_LEN}`;
  });
  sync();

  const form = h(
    'form',
    { class: 'case-form', novalidate: true, 'aria-labelledby': 'case-form-title', id: 'case-form' },
    h('h2', { class: 'card-title', id: 'case-form-title' }, '在线提交申请'),
    lead,
    kind.row,
    ground.row,
    description.row,
    alert.el,
    submit,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    alert.clear();
    setFieldError(ground, null);
    setFieldError(description, null);
    const k = kind.value();
    const body = { kind: k, description: text.value.trim() };
    if (k === 'deletion') {
      if (!groundSelect.value) {
        setFieldError(ground, '请选择删除理由');
        groundSelect.focus();
        return;
      }
      body.ground = groundSelect.value;
    }
    const len = Array.from(body.description).length;
    if (len < MIN_LEN || len > MAX_LEN) {
      setFieldError(description, `请用 ${MIN_LEN}–${MAX_LEN} 个字描述您的问题`);
      text.focus();
      return;
    }
    await withLoading(submit, async () => {
      try {
        const mark = await outboxMark(ownPhone);
        const sentAt = Date.now();
        const opened = await api('/me/cases', { method: 'POST', json: body });
        onOpened(opened, sentAt, mark);
      } catch (err) {
        if (err.handled) return;
        if (err.code === 'invalid_description') setFieldError(description, err.message);
        else if (err.code === 'invalid_deletion_ground') setFieldError(ground, err.message);
        else alert.show(errorText(err));
      }
    });
  });
  return form;
}

function caseSection() {
  const slot = h('section', { class: 'card', id: 'case-card', 'aria-label': '在线提交申请' });
  const verify = (opened, sentAt, mark) => {
    slot.replaceChildren(
      h('h2', { class: 'card-title' }, '验证身份'),
      h('p', { class: 'case-summary' }, opened.kind_label, ' · ', h('span', { class: 'badge badge--pending', id: 'case-status' }, opened.status_label)),
      caseVerifyBlock(opened, {
        sentAt,
        mark,
        onVerified: (verified) => slot.replaceWith(caseAcceptedCard(verified, { onAnother: () => rerender() })),
      }),
    );
    slot.scrollIntoView({ block: 'start' });
    slot.querySelector('#case-code').focus({ preventScroll: true });
  };
  loadInto(slot, () => api('/privacy/case-kinds', { auth: false }), (meta) => caseForm(meta.kinds, meta.deletion_grounds, verify));
  return slot;
}

export function contactView() {
  const hotline = (document.body.dataset.hotline || '').trim() || DEFAULT_HOTLINE;
  const company = (document.body.dataset.company || '').trim();
  const signedIn = Boolean(getToken());
  const { el, body } = page({ title: '联系我们', back: signedIn ? '/settings' : '/login' });
  const entries = cellGroup(
    signedIn ? cell({ href: '#/contact/cases', label: '我的申请', iconName: 'inbox', id: 'entry-cases' }) : null,
    cell({ href: '#/guardian', label: '监护人服务', iconName: 'users', id: 'entry-guardian' }),
  );
  body.append(
    hotlineCard(hotline),
    signedIn ? caseSection() : h('p', { class: 'notice' }, icon('info'), h('span', {}, '登录后可以在线提交申请和投诉，并随时查看处理进度。')),
    entries,
    promiseCard(hotline),
    ...(company ? [h('p', { class: 'footnote' }, `运营者：${company}`)] : []),
  );
  return el;
}
