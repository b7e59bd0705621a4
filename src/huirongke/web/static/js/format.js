// Display formatting: dates in the browser's local time, phone numbers, enums in Chinese.

function parseDate(value) {
  if (!value) return null;
  let s = String(value);
  // The API sends aware ISO datetimes; treat a bare one as UTC just in case.
  if (/T\d{2}:\d{2}/.test(s) && !/(Z|[+-]\d{2}:?\d{2})$/.test(s)) s += 'Z';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

const pad = (n) => String(n).padStart(2, '0');

export function formatDate(value) {
  const d = parseDate(value);
  return d ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` : '';
}

export function formatDateTime(value) {
  const d = parseDate(value);
  return d ? `${formatDate(d.toISOString())} ${pad(d.getHours())}:${pad(d.getMinutes())}` : '';
}

export function formatRelative(value) {
  const d = parseDate(value);
  if (!d) return '';
  const seconds = (Date.now() - d.getTime()) / 1000;
  if (seconds < 60) return '刚刚';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} 分钟前`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} 小时前`;
  if (seconds < 86400 * 7) return `${Math.floor(seconds / 86400)} 天前`;
  return formatDateTime(value);
}

export function nationalPhone(e164) {
  return e164 ? String(e164).replace(/^\+86/, '') : '';
}

/** 138****8000 */
export function maskPhone(e164) {
  const n = nationalPhone(e164);
  return n.length >= 7 ? `${n.slice(0, 3)}****${n.slice(-4)}` : n;
}

export const GENDERS = [
  ['male', '男'],
  ['female', '女'],
  ['other', '其他'],
];

export function genderLabel(value) {
  const hit = GENDERS.find(([v]) => v === value);
  return hit ? hit[1] : '';
}

export const REAL_NAME_STATUS = {
  pending: ['待审核', 'pending'],
  verified: ['已认证', 'ok'],
  rejected: ['未通过', 'bad'],
};

export function displayName(user) {
  if (user?.nickname) return user.nickname;
  return user?.id ? `汇客${String(user.id).slice(-4)}` : '汇客';
}

/** A calendar date from the API ('2025-03-14') shown as is; datetimes in local time. */
export function formatDay(value) {
  if (!value) return '';
  return /^\d{4}-\d{2}-\d{2}$/.test(String(value)) ? String(value) : formatDate(value);
}

export function formatSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** Milliseconds until a datetime (negative once it has passed), or null. */
export function msUntil(value) {
  const d = parseDate(value);
  return d ? d.getTime() - Date.now() : null;
}

/** '6 天 23:59:58' / '23:59:58' for a remaining time in milliseconds. */
export function formatCountdown(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86400);
  const hms = [Math.floor((total % 86400) / 3600), Math.floor((total % 3600) / 60), total % 60].map(pad).join(':');
  return days ? `${days} 天 ${hms}` : hms;
}
