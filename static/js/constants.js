// Stage names, explanations and colours: defined once, used everywhere (selectors: selectors.js).

export const STAGES = [
  {
    key: 'tokenization', title: 'Tokenization',
    explain: [
      'The text is cut into tokens: whole words, pieces of words or single bytes, taken from a fixed vocabulary learned from data (byte-pair encoding). The model never sees letters, only these ids.',
      'A space usually belongs to the token after it; it is shown as ␣. Special tokens (dashed border) mark structure such as the start of a chat turn; they are not text.',
      'Step 0 feeds the whole prompt in. Each later step feeds only the token chosen one step earlier.',
    ],
  },
  {
    key: 'embedding', title: 'Embedding',
    explain: [
      'Each token id picks one row of a learned table: a vector of numbers (576 for SmolLM2, 768 for the smallest GPT-2). Tokens used in similar ways end up with similar vectors.',
      'Attention by itself ignores word order, so position must enter somewhere. GPT-2 adds a learned vector for each position. Llama-family models add nothing here; instead they rotate the queries and keys inside attention by angles that grow with position (rotary embeddings).',
    ],
  },
  {
    key: 'attention', title: 'Attention',
    explain: [
      'In every layer, each head compares the newest tokens\' queries with the keys of all tokens so far, never later ones (the mask is causal).',
      'Softmax turns each row of scores into weights that lie in [0, 1] and sum to 1. The head\'s output is that weighted average of the value vectors.',
      'With a KV cache, the keys and values of earlier tokens are kept, so a decode step computes only one new row instead of redoing the whole sequence.',
    ],
  },
  {
    key: 'feedforward', title: 'Feed Forward',
    explain: [
      'After attention, every position goes on its own through a two-layer network with a nonlinearity (SwiGLU in Llama, GELU in GPT-2), about 2.7 to 4 times wider than the residual stream.',
      'Attention and feed-forward results are both added to a running sum, the residual stream. Its size grows through the layers (line chart), which is why every block normalizes its input first.',
    ],
  },
  {
    key: 'prediction', title: 'Prediction',
    explain: [
      'After the last layer, a final normalization and the unembedding matrix turn the last position\'s vector into one score (logit) per vocabulary token. Softmax makes them probabilities: each in [0, 1], all summing to 1.',
      'The logit lens applies that same final step to the residual stream after every layer: what the model would predict if it stopped there.',
    ],
  },
  {
    key: 'sampling', title: 'Sampling',
    explain: [
      'Greedy decoding (temperature 0) takes the most probable token. Otherwise logits are divided by the temperature (below 1 sharpens, above 1 flattens), top-k keeps the k most likely tokens and top-p the smallest set reaching probability p; what is left is renormalized.',
      'One random number u in [0, 1) then picks the token whose slice of the cumulative probability contains u. Click any candidate to continue the text from it instead.',
    ],
  },
];

export const STAGE_KEYS = STAGES.map((s) => s.key);

// Okabe-Ito: distinguishable with the common forms of colour blindness.
export const CATEGORY_COLORS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];
export const STAGE_COLORS = { embed: '#56B4E9', attention: '#0072B2', feedforward: '#E69F00', prediction: '#009E73', sampling: '#CC79A7', draft: '#D55E00' };
// Bar fill patterns (plotly marker.pattern.shape), so grouped and stacked series differ in more than colour.
export const PATTERNS = ['', '/', '.', 'x', '\\', '-', '|', '+'];
export const SEQUENTIAL = 'Viridis';
export const SIGNED = 'Cividis';

// Viridis stops for drawing on canvas (matplotlib's viridis at 0, 1/8, ..., 1).
export const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
