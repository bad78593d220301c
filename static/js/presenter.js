// Presenter mode (large type, full screen) and keyboard stepping: → or Space next, ← previous.

// The button's label names what a press does, so it carries no aria-pressed (a toggle's label must not change).
export function toggle(button) {
  const on = document.body.classList.toggle('presenter');
  button.textContent = on ? 'Leave presenter mode' : 'Presenter mode';
  if (on && document.documentElement.requestFullscreen && !document.fullscreenElement) {
    document.documentElement.requestFullscreen().catch(() => {});
  } else if (!on && document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  }
  window.dispatchEvent(new Event('resize'));
  return on;
}

const typing = (target) => target
  && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
// Space on a focused button (or chip acting as one) presses it; it must not also step the view.
const pressable = (target) => target && target.closest && target.closest('button, a, [role=button]');

export function bindKeys({ next, prev, generate, togglePresenter }) {
  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
      e.preventDefault();
      generate();
      return;
    }
    if (typing(e.target) || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === ' ' && pressable(e.target)) return;
    if (e.key === 'ArrowRight' || e.key === ' ') { e.preventDefault(); next(); }
    else if (e.key === 'ArrowLeft') { e.preventDefault(); prev(); }
    else if (e.key === 'p' || e.key === 'P') togglePresenter();
  });
}
