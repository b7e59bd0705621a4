// The optional device object sent at sign-in, built only after the policy is agreed (P01/P03).

import { deviceId } from './store.js';

function clip(value, max) {
  const s = String(value || '').trim();
  return s ? s.slice(0, max) : null;
}

function browserName(ua) {
  let m = /Edg\/(\d+)/.exec(ua);
  if (m) return `Edge ${m[1]}`;
  m = /MicroMessenger\/([\d.]+)/.exec(ua);
  if (m) return '微信内置浏览器';
  m = /(?:Chrome|CriOS)\/(\d+)/.exec(ua);
  if (m) return `Chrome ${m[1]}`;
  m = /(?:Firefox|FxiOS)\/(\d+)/.exec(ua);
  if (m) return `Firefox ${m[1]}`;
  m = /Version\/(\d+).*Safari/.exec(ua);
  if (m) return `Safari ${m[1]}`;
  return '浏览器';
}

/** [model, os, mobile] */
function platform(ua) {
  let m = /(iPhone|iPad|iPod).*?OS (\d+(?:_\d+)*)/.exec(ua);
  if (m) return [m[1], `iOS ${m[2].replace(/_/g, '.')}`, true];
  m = /Android (\d+(?:\.\d+)*)(?:;\s*([^;)]+))?/.exec(ua);
  if (m) {
    const model = m[2] && m[2].trim() !== 'K' ? m[2].replace(/\s*Build\/.*$/, '').trim() : 'Android 手机';
    return [model, `Android ${m[1]}`, true];
  }
  m = /Windows NT (\d+\.\d+)/.exec(ua);
  if (m) return ['Windows 电脑', `Windows NT ${m[1]}`, false];
  m = /Mac OS X (\d+(?:[_.]\d+)*)/.exec(ua);
  if (m) return ['Mac', `macOS ${m[1].replace(/_/g, '.')}`, false];
  if (/CrOS/.test(ua)) return ['Chromebook', 'ChromeOS', false];
  if (/Linux/.test(ua)) return ['Linux 电脑', 'Linux', false];
  return ['网页浏览器', 'unknown', false];
}

export function deviceInfo() {
  const ua = navigator.userAgent || '';
  const [model, os, mobile] = platform(ua);
  const connection = navigator.connection || navigator.mozConnection || navigator.webkitConnection;
  return {
    // Phones are named by model; computers by browser, since the OS is shown next to it.
    model: clip(mobile ? `${model} · ${browserName(ua)}` : `${browserName(ua)} 网页版`, 64),
    os_version: clip(os, 64),
    device_id: deviceId(),
    network_type: clip(connection?.effectiveType || 'unknown', 16),
  };
}
