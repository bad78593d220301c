// What the server states once (llmviz/web/facts.py) and the page never repeats: the model card,
// the weight formats with their sizes, the draft sources, every request field with its range and
// default, the logit-lens width. Read from the boot JSON in the page; GET /api/model returns the same.
import { SEL } from './selectors.js';

export const FACTS = JSON.parse(document.querySelector(SEL.boot).textContent);

// The fields POST /api/stream accepts (the batch's `prompts` aside); the server refuses any other.
export const REQUEST_FIELDS = Object.keys(FACTS.fields).filter((k) => k !== 'prompts');
