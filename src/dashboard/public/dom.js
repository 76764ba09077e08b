// DOM helpers. Every stored value (step names, errors, inputs, outputs) reaches the page as a text
// node or an attribute set through setAttribute on an allow-list; nothing here (or anywhere in this
// page) assigns innerHTML, outerHTML or insertAdjacentHTML, and no link takes its href from data.

const SVG_NS = 'http://www.w3.org/2000/svg';
// Attributes data may set. No on* handlers, no href/src/style strings.
const ALLOWED_ATTRS = new Set([
  'class', 'title', 'type', 'value', 'id', 'role', 'aria-label', 'colspan', 'disabled', 'open', 'selected', 'checked',
  'x', 'y', 'x1', 'x2', 'y1', 'y2', 'width', 'height', 'rx', 'viewBox', 'preserveAspectRatio', 'text-anchor',
  'dominant-baseline', 'font-size', 'data-status', 'data-run', 'data-kind', 'data-id', 'data-order', 'tabindex',
]);

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'onclick') { el.addEventListener('click', v); continue; }
    if (k === 'onchange') { el.addEventListener('change', v); continue; }
    if (!ALLOWED_ATTRS.has(k)) throw new Error(`attribute ${k} is not allowed`);
    el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An HTML element; string children become text nodes. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Milliseconds as a short human string. */
export function ms(v) {
  if (v === null || v === undefined) return '—';
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 1000) return `${v.toFixed(1)} ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(2)} s`;
  return `${(v / 60_000).toFixed(1)} min`;
}

/** An ISO time as local date and time. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** A value as pretty JSON text (shown in a <pre> as text). */
export function pretty(v) {
  if (v === undefined) return '';
  try {
    return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

/** A status badge. */
export function badge(status) {
  return h('span', { class: 'badge', 'data-status': status }, status);
}

/** A table from rows and column definitions [{ label, value(row) }]. */
export function table(el, columns, rows, empty = 'nothing yet') {
  fill(el,
    h('thead', null, h('tr', null, columns.map((c) => h('th', null, c.label)))),
    h('tbody', null, rows.length === 0
      ? h('tr', null, h('td', { colspan: columns.length, class: 'muted' }, empty))
      : rows.map((r) => h('tr', null, columns.map((c) => h('td', null, c.value(r)))))));
  return el;
}
