// 我的: avatar, nickname, masked phone; entries to 个人资料 and 设置. Notices when a guardian's
// consent is still needed (P42) or the account is in its cancellation cooling-off period.

import { api } from '../api.js';
import { h, icon } from '../dom.js';
import { displayName, formatDateTime, maskPhone } from '../format.js';
import { rememberMe } from '../state.js';
import { avatar, cell, cellGroup, loadInto, page } from '../ui.js';

function notice(id, href, text, action) {
  return h('a', { class: 'notice notice--link', href, id }, icon('info'), h('span', {}, text), h('span', { class: 'notice-action' }, action));
}

/** Fill `slot` with the notices that apply; failures just leave it empty. */
async function loadNotices(slot) {
  const [guardian, cancellation] = await Promise.all([
    api('/me/guardian', { global: false }).catch(() => null),
    api('/me/account-cancellation', { global: false }).catch(() => null),
  ]);
  const items = [];
  if (guardian && guardian.restricted) {
    items.push(notice('me-guardian-notice', '#/me/guardian', '您未满 18 周岁，需要监护人同意后才能使用全部功能。', '去完成'));
  }
  if (cancellation && cancellation.status === 'cooling_off') {
    items.push(notice('me-cancel-notice', '#/settings/cancel', `账号注销申请冷静期中，将于 ${formatDateTime(cancellation.erase_after)} 开始删除。`, '查看'));
  }
  if (slot.isConnected) slot.replaceChildren(...items);
}

export function meView() {
  const { el, body } = page({ title: '我的', tab: 'me', bare: true, className: 'page--me' });
  const notices = h('div', { class: 'notices', id: 'me-notices' });
  loadInto(
    body,
    async () => rememberMe(await api('/me')),
    (me) => {
      loadNotices(notices); // in the background: the screen doesn't wait for it
      return [
        h('h1', { class: 'sr-only', tabindex: '-1' }, '我的'),
        h(
          'a',
          { class: 'me-header', href: '#/me/profile', id: 'me-header', 'aria-label': `${displayName(me)}，查看和编辑个人资料` },
          avatar(me.avatar_url, me.nickname, 'lg'),
          h(
            'span',
            { class: 'me-header-text' },
            h('span', { class: 'me-name', id: 'me-nickname' }, me.nickname || '未设置昵称'),
            h('span', { class: 'me-phone', id: 'me-phone' }, `手机号 ${maskPhone(me.phone)}`),
            me.real_name && me.real_name.status === 'verified'
              ? h('span', { class: 'badge badge--light' }, icon('shield'), '已实名')
              : null,
          ),
          h('span', { class: 'me-header-arrow' }, icon('chevron')),
        ),
        notices,
        cellGroup(
          cell({ href: '#/me/profile', label: '个人资料', iconName: 'idcard', id: 'entry-profile' }),
          cell({ href: '#/settings', label: '设置', iconName: 'sliders', id: 'entry-settings' }),
        ),
      ];
    },
  );
  return el;
}
