// The JSON API client. Every error becomes an ApiError carrying the body's error.code/message.
// 401 (with a token) and 428 policy_update_required are handled globally through hooks.

import { getToken } from './store.js';

const BASE = '/api/v1';

const hooks = {
  onUnauthorized: () => {},
  onPolicyUpdate: () => {},
};

export function setApiHooks(next) {
  Object.assign(hooks, next);
}

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.retryAfter = null;
    this.handled = false; // true when a global handler already took care of it
  }
}

const FALLBACK = {
  400: '请求有误，请检查后重试',
  401: '请先登录',
  403: '没有权限执行此操作',
  404: '找不到该内容',
  409: '操作与当前状态冲突',
  413: '文件过大',
  415: '不支持的文件类型',
  422: '提交的内容不符合要求',
  428: '需要你的同意后才能继续',
  429: '操作过于频繁，请稍后再试',
};

/**
 * api('/me') · api('/me', {method: 'PATCH', json: {...}}) · api('/media', {method: 'POST', form})
 * auth: false sends no token (the policy, the dev outbox).
 */
export async function api(path, { method = 'GET', json, form, auth = true } = {}) {
  const headers = { Accept: 'application/json' };
  const token = auth ? getToken() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }

  let res;
  try {
    res = await fetch(BASE + path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
  } catch {
    throw new ApiError(0, 'network_error', '网络连接失败，请检查网络后重试');
  }
  if (res.status === 204) return null;

  let data = null;
  try {
    const text = await res.text();
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (res.ok) return data;

  const e = (data && data.error) || {};
  const err = new ApiError(
    res.status,
    e.code || 'http_error',
    e.message || FALLBACK[res.status] || '服务暂时不可用，请稍后再试',
    e.details,
  );
  if (res.status === 429) {
    const wait = Number(err.details.retry_after ?? res.headers.get('Retry-After'));
    err.retryAfter = Number.isFinite(wait) && wait > 0 ? Math.ceil(wait) : null;
  }
  if (res.status === 401 && token) {
    err.handled = true;
    hooks.onUnauthorized(err);
  } else if (res.status === 428 && err.code === 'policy_update_required') {
    err.handled = true;
    hooks.onPolicyUpdate(err);
  }
  throw err;
}

export function formatWait(seconds) {
  if (seconds < 60) return `${seconds} 秒`;
  if (seconds < 3600) return `${Math.ceil(seconds / 60)} 分钟`;
  return `${Math.ceil(seconds / 3600)} 小时`;
}

/** The message to show for an error, with the wait for 429s. */
export function errorText(err) {
  if (!(err instanceof ApiError)) return '出了点问题，请稍后再试';
  if (err.status === 429 && err.retryAfter) return `${err.message}（请 ${formatWait(err.retryAfter)}后重试）`;
  return err.message;
}
