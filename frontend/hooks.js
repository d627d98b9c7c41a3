// Hooks for tests and measurements, all in one place: window.fmApp (read-only views of the
// parts, and the paint count tests wait on) and the 'fm-painted' event that the browser
// benchmark times. Production code only calls expose() once and painted() after a paint.

let app = null;

/**
 * @param {object} parts getters and methods to expose as window.fmApp
 */
export function expose(parts) {
  app = Object.assign(parts, { paintCount: 0, timelineCount: 0 });
  window.fmApp = app;
}

/** A grid was painted: `detail` says which step, whether from memory, and how long it took. */
export function painted(detail) {
  app.paintCount++;
  app.lastPainted = detail;
  document.dispatchEvent(new CustomEvent('fm-painted', { detail }));
}

/** The timeline's strip was painted from a new series: `detail` says which and how fast. */
export function timelinePainted(detail) {
  app.timelineCount++;
  document.dispatchEvent(new CustomEvent('fm-timeline-painted', { detail }));
}
