// The JSON API client. Every error becomes an ApiError carrying the body's error.code/message.
// 401 (with a token), 428 policy_update_required and 403 guardian_consent_required are handled
// globally through hooks, unless a call passes `global: false` to handle them itself.
// 403 step_up_required (export, 注销账号, a guardian, a password, real-name) is handled here for
// every caller: the onStepUp hook asks for an SMS code in place and, once verified, the same
// request is sent again, so the action carries on; the caller only sees the final answer.
// 429 challenge_required (too many SMS codes asked from here) is solved here too: the page works
// out the server's proof-of-work and sends the same request once more with the answer.

import { solveChallenge } from './challenge.js';
import { getToken } from './store.js';

const BASE = '/api/v1';

const hooks = {
  onStepUp: async () => false, // resolves true once the user verified again
  onUnauthorized: () => {},
  onPolicyUpdate: () => {},
  onGuardianRequired: () => {},
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
  428: '需要您的同意后才能继续',
  429: '操作过于频繁，请稍后再试',
};

/**
 * api('/me') · api('/me', {method: 'PATCH', json: {...}}) · api('/media', {method: 'POST', form})
 * auth: false sends no token (the policy, the dev outbox). headers: extra request headers.
 * global: false leaves 401 / 428 / 403-guardian to the caller instead of the global hooks;
 * guardian: false only the 403 guardian_consent_required (a form that explains it in place);
 * stepUp: false leaves a 403 step_up_required to the caller (the step-up calls themselves).
 */
export async function api(path, opts = {}) {
  return withRecovery(opts, async (current) => {
    const res = await send(BASE + path, current, 'application/json');
    if (res.status === 204) return { ok: true, value: null };
    let data = null;
    try {
      const text = await res.text();
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (res.ok) return { ok: true, value: data };
    return { ok: false, res, data };
  });
}

/**
 * A file download through fetch, so the bearer token (or a header such as X-Guardian-Token) is
 * sent: url is the server's own path, e.g. a download_url. Resolves {blob, filename}.
 */
export async function apiBlob(url, opts = {}) {
  if (!url.startsWith(`${BASE}/`)) throw new ApiError(0, 'bad_url', '下载地址无效');
  return withRecovery(opts, async (current) => {
    const res = await send(url, current, '*/*');
    if (res.ok) {
      const blob = await res.blob();
      const disposition = res.headers.get('Content-Disposition') || '';
      const m = /filename="?([^";]+)"?/i.exec(disposition);
      return { ok: true, value: { blob, filename: m ? m[1] : null } };
    }
    let data = null;
    try {
      data = JSON.parse(await res.text());
    } catch {
      data = null;
    }
    return { ok: false, res, data };
  });
}

let stepUpRunning = null; // one dialog for every request that needs it at the same moment

function errorCode(out) {
  return (out.data && out.data.error && out.data.error.code) || null;
}

/**
 * Run attempt(opts) and recover once from what the user need not see: a 403 step_up_required
 * (verify, then again) and a 429 challenge_required on a JSON request (solve it, then again with
 * `challenge: {id, solution}` in the body).
 */
async function withRecovery(opts, attempt) {
  let current = opts;
  let verified = false;
  let solved = false;
  for (;;) {
    const out = await attempt(current);
    if (out.ok) return out.value;
    const code = errorCode(out);
    const challenge = out.data && out.data.error && out.data.error.details && out.data.error.details.challenge;
    if (out.res.status === 429 && code === 'challenge_required' && challenge && !solved && isObject(current.json)) {
      solved = true;
      let solution;
      try {
        solution = await solveChallenge(challenge);
      } catch {
        throw toError(out.res, out.data, current);
      }
      current = { ...current, json: { ...current.json, challenge: { id: challenge.id, solution } } };
      continue;
    }
    const stepUp = out.res.status === 403 && code === 'step_up_required';
    if (!stepUp || verified || current.stepUp === false || current.auth === false) throw toError(out.res, out.data, current);
    if (!stepUpRunning) {
      stepUpRunning = Promise.resolve(hooks.onStepUp()).finally(() => {
        stepUpRunning = null;
      });
    }
    if (!(await stepUpRunning)) {
      const err = toError(out.res, out.data, current);
      err.handled = true; // the user closed the dialog: nothing more to say
      throw err;
    }
    verified = true;
  }
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

async function send(url, { method = 'GET', json, form, auth = true, headers: extra = {} }, accept) {
  const headers = { Accept: accept, ...extra };
  const token = auth ? getToken() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  try {
    return await fetch(url, { method, headers, body, cache: 'no-store', credentials: 'omit' });
  } catch {
    throw new ApiError(0, 'network_error', '网络连接失败，请检查网络后重试');
  }
}

function toError(res, data, { auth = true, global = true, guardian = true }) {
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
  if (!global) return err;
  if (res.status === 401 && auth && getToken()) {
    err.handled = true;
    hooks.onUnauthorized(err);
  } else if (res.status === 428 && err.code === 'policy_update_required') {
    err.handled = true;
    hooks.onPolicyUpdate(err);
  } else if (res.status === 403 && err.code === 'guardian_consent_required' && guardian) {
    err.handled = true;
    hooks.onGuardianRequired(err);
  }
  return err;
}

/** Save a blob as a file: an object URL on a temporary <a download>. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename || 'download';
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function formatWait(seconds) {
  if (seconds < 60) return `${seconds} 秒`;
  if (seconds < 3600) return `${Math.ceil(seconds / 60)} 分钟`;
  return `${Math.ceil(seconds / 3600)} 小时`;
}

const RETRY_HINT = /[，,。；;\s]*(请稍后再试|请稍后重试|请重试|稍后再试)[。！!]?$/;

/** A message without its trailing 请稍后再试 (for places that show their own 重试 or wait). */
export function retryFree(message) {
  const trimmed = String(message || '').replace(RETRY_HINT, '');
  return trimmed || String(message || '');
}

/** The message to show for an error, with the wait for 429s (said once, not twice). */
export function errorText(err) {
  if (!(err instanceof ApiError)) return '出了点问题，请稍后再试';
  if (err.status === 429 && err.retryAfter) return `${retryFree(err.message)}，请 ${formatWait(err.retryAfter)}后再试`;
  return err.message;
}
