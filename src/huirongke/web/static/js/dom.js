// A tiny DOM builder. Text is always set as text nodes: nothing here ever parses HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';
const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'indeterminate', 'inert']);

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    child.forEach((c) => append(el, c));
  } else if (child instanceof Node) {
    el.append(child);
  } else {
    el.append(document.createTextNode(String(child)));
  }
}

/** h('button', {class: 'btn', onclick: fn, 'aria-label': '…'}, '文本', childNode) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

const ICONS = {
  back: [['path', { d: 'M15 18l-6-6 6-6' }]],
  chevron: [['path', { d: 'M9 18l6-6-6-6' }]],
  user: [
    ['circle', { cx: 12, cy: 8, r: 4 }],
    ['path', { d: 'M4 21c0-4 3.6-6 8-6s8 2 8 6' }],
  ],
  userFilled: [
    ['circle', { cx: 12, cy: 8, r: 4.2, class: 'fill' }],
    ['path', { d: 'M3.5 21c0-4.2 3.8-6.5 8.5-6.5s8.5 2.3 8.5 6.5z', class: 'fill' }],
  ],
  idcard: [
    ['rect', { x: 3, y: 5, width: 18, height: 14, rx: 2 }],
    ['circle', { cx: 9, cy: 11, r: 2 }],
    ['path', { d: 'M5.8 16.2c.6-1.4 1.8-2 3.2-2s2.6.6 3.2 2M14.5 10h4M14.5 14h3' }],
  ],
  sliders: [['path', { d: 'M4 21v-7M4 10V3M12 21v-9M12 8V3M20 21v-5M20 12V3M1 14h6M9 8h6M17 16h6' }]],
  shield: [
    ['path', { d: 'M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z' }],
    ['path', { d: 'M9 12l2 2 4-4' }],
  ],
  doc: [['path', { d: 'M14 3H6a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V9zM14 3v6h6M8 13h8M8 17h5' }]],
  headset: [
    ['path', { d: 'M4 15v-3a8 8 0 0 1 16 0v3' }],
    ['rect', { x: 3, y: 14, width: 4, height: 6, rx: 1.5 }],
    ['rect', { x: 17, y: 14, width: 4, height: 6, rx: 1.5 }],
  ],
  mobile: [
    ['rect', { x: 6.5, y: 2.5, width: 11, height: 19, rx: 2.5 }],
    ['path', { d: 'M11 18h2' }],
  ],
  monitor: [
    ['rect', { x: 2.5, y: 4, width: 19, height: 13, rx: 2 }],
    ['path', { d: 'M8 21h8M12 17v4' }],
  ],
  camera: [
    ['path', { d: 'M4 8h3l2-3h6l2 3h3a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V9a1 1 0 0 1 1-1z' }],
    ['circle', { cx: 12, cy: 13.5, r: 3.5 }],
  ],
  lock: [
    ['rect', { x: 5, y: 11, width: 14, height: 10, rx: 2 }],
    ['path', { d: 'M8 11V7a4 4 0 0 1 8 0v4' }],
  ],
  eye: [
    ['path', { d: 'M2 12s3.6-7 10-7 10 7 10 7-3.6 7-10 7S2 12 2 12z' }],
    ['circle', { cx: 12, cy: 12, r: 3 }],
  ],
  logout: [['path', { d: 'M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4M16 17l5-5-5-5M21 12H9' }]],
  check: [['path', { d: 'M5 12.5l4.5 4.5L19 7.5' }]],
  info: [
    ['circle', { cx: 12, cy: 12, r: 9 }],
    ['path', { d: 'M12 11v5M12 7.5v.5' }],
  ],
  phone: [
    [
      'path',
      {
        d: 'M5 4h3.5l1.8 4.5-2.3 1.4a11 11 0 0 0 6.1 6.1l1.4-2.3L20 15.5V19a2 2 0 0 1-2 2C10.8 21 3 13.2 3 6a2 2 0 0 1 2-2z',
      },
    ],
  ],
  close: [['path', { d: 'M6 6l12 12M18 6L6 18' }]],
  plus: [['path', { d: 'M12 5v14M5 12h14' }]],
  download: [['path', { d: 'M12 4v11M7 10.5l5 5 5-5M5 20h14' }]],
  trash: [['path', { d: 'M4 7h16M9 7V4.5h6V7M6.5 7l1 13h9l1-13M10 11v5.5M14 11v5.5' }]],
  list: [['path', { d: 'M9 6h11M9 12h11M9 18h11M4.5 6h.01M4.5 12h.01M4.5 18h.01' }]],
  toggle: [
    ['rect', { x: 2.5, y: 7, width: 19, height: 10, rx: 5 }],
    ['circle', { cx: 16.5, cy: 12, r: 2.6 }],
  ],
  share: [
    ['circle', { cx: 18, cy: 5.5, r: 2.5 }],
    ['circle', { cx: 6, cy: 12, r: 2.5 }],
    ['circle', { cx: 18, cy: 18.5, r: 2.5 }],
    ['path', { d: 'M8.2 10.8l7.6-4.1M8.2 13.2l7.6 4.1' }],
  ],
  inbox: [['path', { d: 'M3 13l2.5-8h13L21 13v6a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1zM3 13h5l1.5 2.5h5L16 13h5' }]],
  users: [
    ['circle', { cx: 9, cy: 8, r: 3.5 }],
    ['path', { d: 'M2.5 20c0-3.6 2.9-5.5 6.5-5.5s6.5 1.9 6.5 5.5' }],
    ['path', { d: 'M16 4.8a3.5 3.5 0 0 1 0 6.4M18.5 14.8c1.8.8 3 2.4 3 5.2' }],
  ],
  home: [['path', { d: 'M3 11l9-7 9 7M5 9.5V20h5v-5h4v5h5V9.5' }]],
  chat: [['path', { d: 'M4 5h16v11H9l-5 4z' }]],
  clock: [
    ['circle', { cx: 12, cy: 12, r: 9 }],
    ['path', { d: 'M12 7v5l3.5 2' }],
  ],
};

export function icon(name, cls = '') {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon ${cls}`.trim());
  for (const [tag, attrs] of ICONS[name] || []) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    svg.append(node);
  }
  return svg;
}

let idSeq = 0;
export function uid(prefix = 'id') {
  idSeq += 1;
  return `${prefix}-${idSeq}`;
}
