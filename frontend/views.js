// Pure DOM builders. Text goes in with textContent only: run and tag names are untrusted.

/** An element with attributes, properties and children (strings become text nodes). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** A labelled control. */
export function field(label, control, extraClass = '') {
  const span = el('span', { class: 'fm-label', text: label });
  return el('label', { class: `fm-field ${extraClass}`.trim() }, span, control);
}

/**
 * Replaces a <select>'s options, keeping `selected` if it is still offered.
 * @param {HTMLSelectElement} select
 * @param {{value:string, text:string}[]} options
 * @param {string} selected
 * @returns {string} the value now selected ('' when there are no options)
 */
export function setOptions(select, options, selected) {
  const same = select.options.length === options.length
    && options.every((o, i) => select.options[i].value === o.value
      && select.options[i].textContent === o.text);
  if (!same) {
    select.replaceChildren(...options.map((o) => el('option', { value: o.value, text: o.text })));
  }
  const values = options.map((o) => o.value);
  select.value = values.includes(selected) ? selected : (values[0] ?? '');
  return select.value;
}

/** The empty state: what to do to see feature maps here. */
export function emptyState() {
  return el('div', { class: 'fm-empty', id: 'fm-empty' },
    el('h2', { text: 'No feature maps logged yet' }),
    el('p', { text: 'Log the activations of a few layers with tb_featmap, '
      + 'then point TensorBoard at the log directory:' }),
    el('pre', { class: 'fm-code', text: [
      'from tb_featmap import log_feature_maps',
      'writer = SummaryWriter("runs/exp")',
      'log_feature_maps(writer, {"conv1": activations}, step)',
    ].join('\n') }),
    el('p', { class: 'fm-muted', text: 'This page checks for new data every 10 seconds.' }));
}

// Bidi controls, zero-width and other invisible or control characters.
const INVISIBLE = new RegExp('[\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u061c\\u115f\\u1160\\u180e'
  + '\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u206f\\u3164\\ufeff\\ufff9-\\ufffb]', 'g');

/**
 * A run or layer name as what it is: each invisible or direction-changing character is
 * written out as ⟨U+XXXX⟩, so "\u202Egpj.exe" cannot pass for "exe.jpg".
 * @param {string} name
 */
export function visibleName(name) {
  const code = (ch) => ch.codePointAt(0).toString(16).toUpperCase().padStart(4, '0');
  return String(name).replace(INVISIBLE, (ch) => `⟨U+${code(ch)}⟩`);
}

/**
 * The notice area: notes on the layer, and errors, each error kept until the thing that
 * failed (its key: 'tags', 'steps', 'step', ...) loads again. Lives outside the parts that
 * hide, so an error is always visible.
 */
export class Notices {
  constructor() {
    this.node = el('div', { id: 'fm-notice', class: 'fm-notice', role: 'status', hidden: true });
    this.notes = [];
    this.errors = new Map();
  }

  /** Notes on the layer shown (replacing the previous ones). */
  note(lines) {
    this.notes = lines;
    this.show();
  }

  error(key, text) {
    this.errors.set(key, text);
    this.show();
  }

  /** What `key` names loaded: its error, if any, goes. */
  ok(key) {
    if (this.errors.delete(key)) this.show();
  }

  show() {
    const errors = [...this.errors.values()].map((t) => el('div', { class: 'fm-error', text: t }));
    this.node.replaceChildren(...errors, ...this.notes.map((line) => el('div', { text: line })));
    this.node.hidden = this.node.childElementCount === 0;
  }
}

/**
 * A colour bar: the LUT as a strip with the low and high labels under it.
 * @param {Uint8Array} rgb 768 bytes
 * @param {string} lowText
 * @param {string} highText
 * @param {string} caption
 * @param {string} [id]
 */
export function colorBar(rgb, lowText, highText, caption, id = 'fm-colorbar') {
  const canvas = el('canvas', { class: 'fm-colorbar-strip', width: 256, height: 1 });
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(256, 1);
  for (let i = 0; i < 256; i++) {
    image.data.set([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
  return el('div', { class: 'fm-colorbar', id },
    canvas,
    el('div', { class: 'fm-colorbar-labels' },
      el('span', { class: 'fm-colorbar-low', text: lowText }),
      el('span', { class: 'fm-colorbar-caption', text: caption }),
      el('span', { class: 'fm-colorbar-high', text: highText })));
}

/** A short number for labels. */
export function formatValue(v) {
  if (Number.isNaN(v)) return 'non-finite';
  if (!Number.isFinite(v)) return v > 0 ? '+inf' : '-inf';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-3 ? v.toExponential(3) : String(Number(v.toPrecision(4)));
}

/** A frame of the filmstrip: a small canvas and its step. */
export function filmFrame(canvas, step, current) {
  const cls = current ? 'fm-film-frame fm-current' : 'fm-film-frame';
  return el('button', { class: cls, type: 'button', dataset: { step: String(step) } },
    canvas, el('span', { text: String(step) }));
}

const DROPPED_WHY = {
  samples: 'beyond max_samples',
  channels: 'beyond max_channels',
  tokens: 'the class token of a token layout',
};

/** Notes on a layer from its /tags entry: steps TensorBoard did not keep, what was not stored. */
export function layerNotes(info) {
  if (!info) return [];
  const lines = [];
  if (info.logged > info.steps) {
    lines.push(`TensorBoard kept ${info.steps} of the ${info.logged} steps logged for this layer. `
      + `Restart it with ${info.samplesFlag} to keep them all.`);
  }
  const parts = Object.entries(info.dropped || {}).filter(([, count]) => count > 0)
    .map(([what, count]) => {
      const noun = count === 1 ? what.replace(/s$/, '') : what;
      return `${count} ${noun} (${DROPPED_WHY[what] || 'by the writer'})`;
    });
  if (parts.length) lines.push(`Not stored: ${parts.join(', ')}.`);
  if (info.downsample > 1) {
    lines.push(`Maps were downsampled ${info.downsample}× to fit the writer's max_size.`);
  }
  return lines;
}
