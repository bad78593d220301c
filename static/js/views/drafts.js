// The draft tokens of a speculative step and what became of each. The verify pass checks them
// in order and stops at the first rejection (llmviz/speculative.py verify()), so the step's
// `decisions` cover only the drafts up to that one; the rest were never checked.
export function draftsOf(step) {
  const spec = step.speculative;
  if (!spec) return [];
  return step.input_tokens.slice(1).map((tok, i) => {
    let status = 'not checked';
    if (i < spec.accepted) status = 'accepted';
    else if (i === spec.accepted && spec.final_kind === 'resample') status = 'rejected';
    return { ...tok, status };
  });
}
