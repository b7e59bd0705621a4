// A data export in progress (P29, R06): a progress bar polled every second until the archive is
// ready, then a 下载 button that fetches it with the caller's credentials and saves it as a file.
// Used by 下载我的数据 (bearer token) and by 监护人服务 (X-Guardian-Token).

import { apiBlob, errorText, saveBlob } from './api.js';
import { h, icon } from './dom.js';
import { formatDateTime, formatSize, msUntil } from './format.js';
import { toast, withLoading } from './ui.js';

export const EXPORT_STATUS = {
  pending: '排队中',
  running: '生成中',
  ready: '已完成',
  failed: '生成失败',
};

const POLL_MS = 1000;

export function exportExpired(row) {
  const left = msUntil(row.expires_at);
  return row.status === 'ready' && left !== null && left <= 0;
}

export function exportStatusLabel(row) {
  return exportExpired(row) ? '已过期' : EXPORT_STATUS[row.status] || row.status;
}

function statusTone(row) {
  if (exportExpired(row)) return 'muted';
  return { ready: 'ok', failed: 'bad' }[row.status] || 'pending';
}

/** Fetch the archive (auth / headers as the api client takes them) and save it. */
export async function downloadExport(button, row, opts = {}) {
  await withLoading(button, async () => {
    try {
      const { blob, filename } = await apiBlob(row.download_url, opts);
      saveBlob(blob, filename || `huirongke-export-${String(row.id).slice(-6)}.zip`);
      toast('已开始下载', 'success');
    } catch (err) {
      if (!err.handled) toast(errorText(err), 'error');
    }
  });
}

/**
 * A live export card. poll() resolves the export's latest state; requestOpts are passed to the
 * download (e.g. {auth: false, headers: {'X-Guardian-Token': t}}). onSettled(row) runs once the
 * export is ready or failed.
 */
export function exportTracker(initial, { poll, requestOpts = {}, onSettled = null, idPrefix = 'export', title = null }) {
  const status = h('span', { class: 'badge', id: `${idPrefix}-status` });
  const progress = h('progress', { class: 'progress', id: `${idPrefix}-progress`, max: '100', 'aria-label': '导出进度' });
  const percent = h('span', { class: 'progress-value', 'aria-hidden': 'true' });
  const detail = h('p', { class: 'export-detail', id: `${idPrefix}-detail`, 'aria-live': 'polite' });
  const actions = h('div', { class: 'export-actions' });
  const el = h(
    'section',
    { class: 'card export-card', 'aria-label': title || '导出进度', id: `${idPrefix}-card` },
    h(
      'div',
      { class: 'export-head' },
      h('span', { class: 'export-icon' }, icon('download')),
      h('span', { class: 'export-title' }, title || '个人信息导出'),
      status,
    ),
    h('div', { class: 'progress-row' }, progress, percent),
    detail,
    actions,
  );

  let settled = false;
  const render = (row) => {
    status.textContent = exportStatusLabel(row);
    status.className = `badge badge--${statusTone(row)}`;
    const value = row.status === 'ready' ? 100 : Math.max(0, Math.min(100, Number(row.progress) || 0));
    progress.value = value;
    percent.textContent = `${value}%`;
    el.dataset.status = row.status;
    actions.replaceChildren();
    if (row.status === 'ready' && !exportExpired(row)) {
      const size = row.size ? `，文件大小 ${formatSize(row.size)}` : '';
      detail.textContent = `导出文件已生成${size}。下载链接有效期 24 小时，至 ${formatDateTime(row.expires_at)}。`;
      const btn = h('button', { type: 'button', class: 'btn btn--primary btn--block', id: `${idPrefix}-download` }, icon('download'), '下载');
      btn.addEventListener('click', () => downloadExport(btn, row, requestOpts));
      actions.append(btn);
    } else if (row.status === 'ready') {
      detail.textContent = '下载链接已过期，请重新申请导出。';
    } else if (row.status === 'failed') {
      detail.textContent = '导出文件生成失败，请稍后重新申请；如多次失败，请联系我们。';
    } else {
      detail.textContent = '正在整理您的个人信息，通常只需几秒钟，请勿关闭本页面。';
    }
    if ((row.status === 'ready' || row.status === 'failed') && !settled) {
      settled = true;
      if (onSettled) onSettled(row);
    }
  };

  const loop = async () => {
    if (!el.isConnected) return; // the user left the screen: stop polling
    try {
      const row = await poll();
      render(row);
      if (row.status === 'pending' || row.status === 'running') window.setTimeout(loop, POLL_MS);
    } catch (err) {
      if (err && err.handled) return;
      detail.textContent = errorText(err);
      const retry = h('button', { type: 'button', class: 'btn btn--outline btn--sm' }, '重试');
      retry.addEventListener('click', () => {
        actions.replaceChildren();
        loop();
      });
      actions.replaceChildren(retry);
    }
  };

  render(initial);
  if (initial.status === 'pending' || initial.status === 'running') {
    // Start once the card is on screen (isConnected), then every second.
    window.setTimeout(loop, POLL_MS);
  }
  return el;
}
