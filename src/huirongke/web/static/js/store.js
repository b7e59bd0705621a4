// Everything the client keeps in localStorage. Reads and writes never throw (private mode, quota).

const KEYS = {
  token: 'hrk.token',
  policy: 'hrk.policy.agreedVersion',
  device: 'hrk.device.id',
};

function read(key) {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    if (value === null || value === undefined) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, String(value));
  } catch {
    /* storage unavailable: the session simply won't survive a reload */
  }
}

export function getToken() {
  return read(KEYS.token);
}

export function setToken(token) {
  write(KEYS.token, token);
}

export function clearToken() {
  write(KEYS.token, null);
}

/** The policy version this browser agreed to, or null when it never agreed. */
export function agreedVersion() {
  const raw = read(KEYS.policy);
  const n = raw === null ? NaN : Number.parseInt(raw, 10);
  return Number.isFinite(n) ? n : null;
}

export function setAgreedVersion(version) {
  write(KEYS.policy, version);
}

function randomId() {
  if (window.crypto?.randomUUID) return window.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A random id for this browser, created on first use. Only read once the policy is agreed. */
export function deviceId() {
  let id = read(KEYS.device);
  if (!id) {
    id = randomId();
    write(KEYS.device, id);
  }
  return id;
}
