// Which position a step's views describe: the step's focus, the input row whose prediction
// gave the token the step emitted (the last row of a plain step; on a speculative verify pass
// the row after the accepted drafts). The engine reports it as focus_position.
import { visible } from '../dom.js';

export function focusPosition(step, reported = undefined) {
  return reported ?? step.focus_position ?? step.positions[1] - 1;
}

// "position 7 (after ␣fox)": the position and the token read there. `reported`: the position a
// detail endpoint says it describes, when it says so.
export function focusLabel(step, reported = undefined) {
  const p = focusPosition(step, reported);
  const tok = step.input_tokens[p - step.positions[0]];
  return `position ${p} (after ${visible(tok.text)})`;
}

// One sentence for views of a step that fed several tokens: which of them the view shows.
export function focusNote(step) {
  const fed = step.positions[1] - step.positions[0];
  if (fed === 1) return '';
  const why = step.speculative
    ? 'the row whose prediction gave the last token this step emitted (rows of rejected drafts after it are not shown)'
    : 'the last one, whose prediction gives the next token';
  return ` This step fed ${fed} tokens; shown: ${focusLabel(step)}, ${why}.`;
}
