// 注销账号 (P36, R05): a plain explanation, a confirm dialog, then either a live countdown to the
// end of the cooling-off period with 撤回注销, or (no cooling-off) erasure at once: the next call
// answers 401 and the app returns to the login screen. A rights screen: it works before agreeing
// to a new policy version.

import { api, errorText } from '../api.js';
import { h, icon } from '../dom.js';
import { formatCountdown, formatDateTime, msUntil } from '../format.js';
import { navigate, rerender } from '../nav.js';
import { forgetMe } from '../state.js';
import { clearToken } from '../store.js';
import { alertBox, card, confirmDialog, loadInto, page, toast, withLoading } from '../ui.js';

const POLL_MS = 1000;
const POLL_LIMIT = 120; // two minutes of 正在注销… before suggesting to check again later

/** The cooling-off days: the server's answer when there is one, else the shell's setting. */
function coolingOffDays(row) {
  if (row && Number.isInteger(row.cooling_off_days)) return row.cooling_off_days;
  const raw = document.body.dataset.coolingOff;
  const n = raw === undefined || raw === '' ? NaN : Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : null;
}

function accountGone() {
  clearToken();
  forgetMe();
  toast('账号已注销', 'success', 3000);
  navigate('/login', { replace: true });
}

function section(title, ...children) {
  return h('div', { class: 'explain' }, h('h3', { class: 'explain-title' }, title), ...children);
}

function explanation(days) {
  let cooling;
  if (days === null) cooling = '提交后有一段冷静期，期间您可以在本页随时撤回，账号照常使用。冷静期结束后，我们开始删除您的个人信息，删除后无法恢复。';
  else if (days > 0) cooling = `提交后有 ${days} 天冷静期，期间您可以在本页随时撤回，账号照常使用。冷静期结束后，我们开始删除您的个人信息，删除后无法恢复。`;
  else cooling = '提交后立即开始删除，无法撤回，删除后也无法恢复。';
  return card(
    '注销前请了解',
    section(
      '将被删除的信息',
      h(
        'ul',
        { class: 'promise-list' },
        h('li', {}, '账号资料：手机号码、昵称、头像、性别、生日、地区和个人标签'),
        h('li', {}, '实名认证信息：姓名和身份证号码'),
        h('li', {}, '登录设备与会话、隐私设置、导出文件，以及您提交的申请内容'),
      ),
    ),
    section(
      '依法保留的记录',
      h(
        'p',
        { class: 'card-text' },
        '您同意隐私政策、授权和撤回授权的记录、这次注销申请的记录以及安全审计日志，作为我们依法履行义务的证明予以保留。这些记录不再含有您的手机号码、昵称等能识别您的信息，保存期限届满后删除。',
      ),
    ),
    section('冷静期', h('p', { class: 'card-text', id: 'cancel-cooling-off' }, cooling)),
    section('注销之后', h('p', { class: 'card-text' }, '原手机号码可以重新注册，但得到的是一个全新的空白账号，原有数据无法恢复。')),
    h(
      'p',
      { class: 'notice' },
      icon('info'),
      h('span', {}, '注销前，建议先', h('a', { class: 'link', href: '#/settings/export' }, '下载我的数据'), '。'),
    ),
  );
}

/** Poll until the account is gone (401), then back to the login screen. */
function erasingCard() {
  const status = h('p', { class: 'card-text', id: 'cancel-erasing' }, '正在注销您的账号并删除个人信息，请稍候…');
  const el = card(
    '正在注销',
    h('div', { class: 'state state--inline', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), status),
  );
  let tries = 0;
  const loop = async () => {
    if (!el.isConnected && tries > 0) return;
    tries += 1;
    try {
      await api('/me/account-cancellation', { global: false });
    } catch (err) {
      if (err.status === 401) {
        accountGone();
        return;
      }
    }
    if (tries >= POLL_LIMIT) {
      status.textContent = '注销仍在进行中。完成后您将无法再登录此账号，可稍后再回来查看。';
      return;
    }
    window.setTimeout(loop, POLL_MS);
  };
  window.setTimeout(loop, 300);
  return el;
}

function coolingOffCard(row) {
  const clock = h('p', { class: 'countdown', id: 'cancel-countdown', role: 'timer', 'aria-live': 'off' });
  const withdraw = h('button', { type: 'button', class: 'btn btn--primary btn--block btn--lg', id: 'cancel-withdraw' }, '撤回注销');
  const alert = alertBox();
  const el = h(
    'section',
    { class: 'card cancel-status', 'aria-labelledby': 'cancel-status-title', id: 'cancel-status' },
    h('span', { class: 'cancel-status-icon' }, icon('clock')),
    h('h2', { class: 'cancel-status-title', id: 'cancel-status-title' }, '注销申请已提交'),
    h('p', { class: 'card-text' }, `冷静期 ${row.cooling_off_days} 天。距离开始删除您的账号数据还有：`),
    clock,
    h('p', { class: 'card-note', id: 'cancel-erase-after' }, `冷静期至 ${formatDateTime(row.erase_after)} 结束，此前您可以随时撤回，账号照常使用。`),
    alert.el,
    withdraw,
  );
  let timer = null;
  const tick = () => {
    if (!clock.isConnected && timer) {
      window.clearInterval(timer);
      return;
    }
    const left = msUntil(row.erase_after);
    if (left !== null && left <= 0) {
      window.clearInterval(timer);
      el.replaceWith(erasingCard());
      return;
    }
    clock.textContent = formatCountdown(left || 0);
  };
  tick();
  timer = window.setInterval(tick, 1000);
  withdraw.addEventListener('click', () =>
    withLoading(withdraw, async () => {
      alert.clear();
      try {
        await api('/me/account-cancellation', { method: 'DELETE' });
        window.clearInterval(timer);
        toast('已撤回注销申请，账号照常使用', 'success');
        rerender();
      } catch (err) {
        if (!err.handled) alert.show(errorText(err));
      }
    }),
  );
  return el;
}

function requestBlock(days, onRequested) {
  const alert = alertBox();
  const submit = h('button', { type: 'button', class: 'btn btn--danger btn--block btn--lg', id: 'cancel-request' }, '申请注销账号');
  submit.addEventListener('click', async () => {
    alert.clear();
    const ok = await confirmDialog({
      title: '确认注销账号？',
      message:
        days === 0
          ? '提交后将立即删除您的账号和个人信息，无法撤回，也无法恢复。'
          : `提交后进入${days ? ` ${days} 天` : ''}冷静期，期间可随时撤回；冷静期结束后，您的个人信息将被删除且无法恢复。`,
      confirmText: '确认注销',
      danger: true,
    });
    if (!ok) return;
    await withLoading(submit, async () => {
      try {
        onRequested(await api('/me/account-cancellation', { method: 'POST' }));
      } catch (err) {
        if (!err.handled) alert.show(errorText(err));
      }
    });
  });
  return h('div', { class: 'cancel-actions' }, alert.el, submit);
}

export function cancelView() {
  const { el, body } = page({ title: '注销账号', back: '/settings/security' });
  loadInto(
    body,
    () => api('/me/account-cancellation'),
    (row) => {
      const days = coolingOffDays(row);
      if (row && (row.status === 'erasing' || row.status === 'erased')) return erasingCard();
      if (row && row.status === 'cooling_off') {
        const left = msUntil(row.erase_after);
        return [left !== null && left <= 0 ? erasingCard() : coolingOffCard(row), explanation(days)];
      }
      return [
        row && row.status === 'withdrawn'
          ? h('p', { class: 'notice' }, icon('info'), h('span', {}, '您上次的注销申请已撤回，账号照常使用。'))
          : null,
        explanation(days),
        requestBlock(days, (next) => {
          const left = msUntil(next.erase_after);
          if (next.status === 'cooling_off' && left !== null && left > 0) {
            toast('注销申请已提交', 'success');
            rerender();
          } else {
            // No cooling-off: erasure has started, and this session ends with it.
            body.replaceChildren(erasingCard());
          }
        }),
      ].filter(Boolean);
    },
  );
  return el;
}
