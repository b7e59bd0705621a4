// 下载我的数据 (P29, R06): 申请导出 → a progress bar until the archive is ready → 下载 (fetched with
// the bearer token). Earlier exports are listed below. A rights screen: it works before agreeing
// to a new policy version.

import { api, errorText } from '../api.js';
import { h } from '../dom.js';
import { formatDateTime, formatSize } from '../format.js';
import { downloadExport, exportExpired, exportStatusLabel, exportTracker } from '../exports.js';
import { alertBox, card, loadInto, page, withLoading } from '../ui.js';

/** The export to follow at the top: one in progress, or a ready one still downloadable. */
function currentOf(rows) {
  const latest = rows[0];
  if (!latest) return null;
  if (latest.status === 'pending' || latest.status === 'running') return latest;
  if (latest.status === 'ready' && !exportExpired(latest)) return latest;
  return null;
}

function historyCard(rows) {
  const items = rows.map((r) => {
    const canDownload = r.status === 'ready' && !exportExpired(r);
    const btn = canDownload
      ? h('button', { type: 'button', class: 'btn btn--outline btn--xs', 'aria-label': `下载 ${formatDateTime(r.created_at)} 的导出文件` }, '下载')
      : null;
    if (btn) btn.addEventListener('click', () => downloadExport(btn, r));
    const bits = [exportStatusLabel(r)];
    if (r.size) bits.push(formatSize(r.size));
    if (canDownload) bits.push(`有效期至 ${formatDateTime(r.expires_at)}`);
    return h(
      'li',
      { class: 'record', dataset: { status: r.status } },
      h('span', { class: 'record-text' }, h('span', { class: 'record-main' }, formatDateTime(r.created_at)), h('span', { class: 'record-sub record-sub--left' }, bits.join(' · '))),
      btn,
    );
  });
  return card('导出记录', h('ul', { class: 'record-list', id: 'export-history' }, items));
}

export function exportView() {
  const { el, body } = page({ title: '下载我的数据', back: '/settings/security' });

  const build = (rows) => {
    const slot = h('div', { class: 'export-slot', id: 'export-current' });
    const historySlot = h('div', {});
    const alert = alertBox();
    const request = h('button', { type: 'button', class: 'btn btn--primary btn--block btn--lg', id: 'export-request' }, '申请导出');

    const refreshHistory = async (shownId) => {
      try {
        const rows = await api('/me/data-exports');
        const others = rows.filter((r) => r.id !== shownId);
        historySlot.replaceChildren(...(others.length ? [historyCard(others)] : []));
      } catch {
        /* the list is secondary: keep what is shown */
      }
    };

    const follow = (row) => {
      slot.replaceChildren(
        exportTracker(row, {
          poll: () => api(`/me/data-exports/${encodeURIComponent(row.id)}`),
          onSettled: () => refreshHistory(row.id),
        }),
      );
    };

    request.addEventListener('click', () =>
      withLoading(request, async () => {
        alert.clear();
        try {
          const row = await api('/me/data-exports', { method: 'POST' });
          follow(row);
          refreshHistory(row.id);
        } catch (err) {
          if (!err.handled) alert.show(errorText(err));
        }
      }),
    );

    const current = currentOf(rows);
    if (current) follow(current);
    const others = rows.filter((r) => !current || r.id !== current.id);
    if (others.length) historySlot.append(historyCard(others));

    return [
      card(
        '导出您的个人信息',
        h('p', { class: 'card-text' }, '我们会把您在汇容客的个人信息打包成一个 ZIP 压缩文件，包括：'),
        h(
          'ul',
          { class: 'promise-list' },
          h('li', {}, 'index.html：用浏览器打开即可阅读的中文版本'),
          h('li', {}, 'data.json：机器可读的格式，便于转移到其他服务'),
          h('li', {}, '您上传的头像等图片'),
        ),
        h('p', { class: 'card-note card-note--after' }, '文件生成后 24 小时内可下载，每 24 小时可申请一次。下载需要登录，文件不会通过短信或邮件发送。'),
        alert.el,
        request,
      ),
      slot,
      historySlot,
    ];
  };

  loadInto(body, () => api('/me/data-exports'), build);
  return el;
}
