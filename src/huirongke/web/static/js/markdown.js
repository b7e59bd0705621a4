// The policy's small Markdown dialect: "## " / "### " headings, "- " bullets and paragraphs
// (plus **bold**). Everything is built from text nodes, so the policy text can never inject HTML.

import { h } from './dom.js';

const CJK = /[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]/;

function inline(text) {
  const parts = text.split(/\*\*(.+?)\*\*/g);
  return parts.map((part, i) => (i % 2 === 1 ? h('strong', {}, part) : part));
}

function joinLines(lines) {
  return lines.reduce((acc, line) => {
    if (!acc) return line;
    const glue = CJK.test(acc.slice(-1)) || CJK.test(line[0]) ? '' : ' ';
    return acc + glue + line;
  }, '');
}

/** Render Markdown text into a DocumentFragment. */
export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  let list = null;
  let para = [];
  const flush = () => {
    if (para.length) frag.append(h('p', {}, inline(joinLines(para))));
    para = [];
  };
  for (const raw of String(text || '').split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) {
      flush();
      list = null;
      continue;
    }
    const heading = /^(#{1,4})\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      list = null;
      const level = Math.min(4, Math.max(2, heading[1].length));
      frag.append(h(`h${level + 1}`, { class: `md-h${level}` }, inline(heading[2])));
      continue;
    }
    const bullet = /^[-*]\s+(.*)$/.exec(line);
    if (bullet) {
      flush();
      if (!list) {
        list = h('ul');
        frag.append(list);
      }
      list.append(h('li', {}, inline(bullet[1])));
      continue;
    }
    list = null;
    para.push(line);
  }
  flush();
  return frag;
}
