// The channel controls: top K by a statistic, and a channel filter ("3, 17, 40-45") with an
// inline message when it cannot be read. Both stay as they are when the step or layer changes.

import { RANKINGS, parseChannels } from './channels.js';
import { el, field, setOptions } from './views.js';

export class Focus {
  /**
   * @param {object} on callbacks
   * @param {() => void} on.change the choice changed
   */
  constructor(on) {
    this.top = el('input', {
      id: 'fm-top', type: 'number', min: 0, step: 1, placeholder: 'all', class: 'fm-number',
    });
    this.by = el('select', { id: 'fm-top-by' });
    setOptions(this.by, Object.entries(RANKINGS).map(([value, text]) => ({ value, text })), 'std');
    this.filter = el('input', {
      id: 'fm-channels', type: 'text', placeholder: 'e.g. 3, 17, 40-45', class: 'fm-filter',
    });
    this.message = el('span', { id: 'fm-channels-error', class: 'fm-error', hidden: true });
    this.node = el('span', { class: 'fm-toolbar-group' },
      field('Top K', this.top), field('by', this.by), field('Channels', this.filter), this.message);
    this.top.addEventListener('input', () => on.change());
    this.by.addEventListener('change', () => on.change());
    this.filter.addEventListener('input', () => on.change());
  }

  /**
   * The choice for a layer of `count` channels; an unreadable filter is said inline and
   * filters nothing.
   * @returns {{top: number, by: string, filter: number[]|null}}
   */
  choice(count) {
    const { channels, error } = parseChannels(this.filter.value, count);
    this.message.textContent = error ? `Channels: ${error}` : '';
    this.message.hidden = !error;
    const k = Math.floor(Number(this.top.value));
    return { top: Number.isFinite(k) && k > 0 ? k : 0, by: this.by.value, filter: channels };
  }
}
