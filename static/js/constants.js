// Stage names, explanations and colours: defined once, used everywhere (selectors: selectors.js).

export const STAGES = [
  {
    key: 'tokenization', title: 'Tokenization',
    explain: [
      'The text is cut into tokens: whole words, pieces of words or single bytes, taken from a fixed vocabulary '
        + 'learned from data (byte-pair encoding). The model never sees letters, only these ids. Detokenizing is the '
        + 'reverse: each generated id is looked up and the pieces are joined back into text.',
      'A space usually belongs to the token after it; it is shown as ␣. Special tokens (dashed border) mark '
        + 'structure such as the start of a chat turn; they are not text.',
      'Step 0 feeds the whole prompt in. With the KV cache on, each later step feeds only the token chosen one '
        + 'step earlier; with it off, a step feeds the whole text again; a speculative step feeds that token plus the '
        + 'draft tokens to be checked.',
    ],
  },
  {
    key: 'embedding', title: 'Embedding',
    explain: [
      'Each token id picks one row of a learned table, the embedding matrix (one row per vocabulary token): a '
        + 'vector of numbers, 576 for SmolLM2, 768 for the smallest GPT-2. Tokens used in similar ways tend to end up '
        + 'with similar vectors.',
      'SmolLM2 and GPT-2 use the same table again at the very end, as the unembedding (tied weights): a token\'s '
        + 'score (logit) is the dot product of the final vector with that token\'s row.',
      'Attention by itself ignores word order, so position must enter somewhere. GPT-2 adds a learned vector for '
        + 'each position. Llama-family models add nothing here; instead they rotate the queries and keys inside '
        + 'attention by angles that grow with position (rotary embeddings).',
    ],
  },
  {
    key: 'attention', title: 'Attention',
    explain: [
      'In every layer, each head turns every position\'s vector into a query q, a key k and a value v. The score '
        + 'of a query against a key is q·k / √d_head (d_head: the head size). The causal mask sets the score of every '
        + 'key after the query to −∞ before the softmax, so each token attends to itself and the tokens before it, '
        + 'never later ones.',
      'Softmax turns each row of scores into weights that lie in [0, 1] and sum to 1 (masked keys get exactly 0). '
        + 'The head\'s output is that weighted average of the value vectors. The outputs of all heads are '
        + 'concatenated, multiplied by the output matrix W_O and added to the residual stream.',
      'With a KV cache, the keys and values of earlier tokens are kept, so a decode step computes q, k and v for '
        + 'the new token only and one row of scores against the cached keys, instead of redoing the whole sequence.',
    ],
  },
  {
    key: 'feedforward', title: 'Feed Forward',
    explain: [
      'After attention, every position goes on its own through the feed-forward block. Llama uses SwiGLU, with '
        + 'three matrices: W_down(SiLU(W_gate x) ⊙ W_up x), where SiLU(z) = z · sigmoid(z) and ⊙ multiplies element by '
        + 'element. GPT-2 uses two: W_2 GELU(W_1 x + b_1) + b_2. The hidden layer is 2.7 (SmolLM2) to 4 (GPT-2) times '
        + 'wider than the residual stream.',
      'Attention and feed-forward results are both added to a running sum, the residual stream. Before each of the '
        + 'two parts its input is normalized: RMSNorm(x) = x / √(mean(x²) + ε) · g in Llama, LayerNorm(x) = (x − '
        + 'mean(x)) / √(var(x) + ε) · g + b in GPT-2. Normalizing before each part (pre-norm) is what keeps the '
        + 'training of deep stacks stable.',
    ],
  },
  {
    key: 'prediction', title: 'Prediction',
    explain: [
      'After the last layer, a final normalization and the unembedding matrix turn one position\'s vector into one '
        + 'score (logit) z per vocabulary token. Softmax makes them probabilities, p = exp(z) / Σ exp(z): each in [0, '
        + '1], all summing to 1.',
      'The logit lens applies that same final step to the residual stream after every layer. Only the last layer '
        + 'is trained to be read this way, so the earlier rows show what is already readable there, not what the model '
        + 'would predict if it stopped.',
    ],
  },
  {
    key: 'sampling', title: 'Sampling',
    explain: [
      'Greedy decoding (temperature 0) takes the most probable token. Otherwise logits are divided by the '
        + 'temperature before the softmax (below 1 sharpens, above 1 flattens), top-k keeps the k most likely tokens '
        + 'and top-p the smallest set reaching probability p; what is left is renormalized to sum to 1.',
      'One random number u in [0, 1) then picks the token whose slice of the cumulative probability contains u. '
        + 'The numbers come from a generator started from the run\'s seed, so the same seed and settings give the same '
        + 'u and the same tokens.',
      'The chosen token is appended to the text and fed back in as the input of the next step, until the token '
        + 'limit or an end-of-text token. Click any candidate to continue the text from it instead.',
    ],
  },
];

export const STAGE_KEYS = STAGES.map((s) => s.key);

// Okabe-Ito: distinguishable with the common forms of colour blindness.
export const CATEGORY_COLORS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];
export const STAGE_COLORS = {
  embed: '#56B4E9', attention: '#0072B2', feedforward: '#E69F00', prediction: '#009E73', sampling: '#CC79A7',
  draft: '#D55E00',
};
// Bar fill patterns (plotly marker.pattern.shape), so grouped and stacked series differ in more than colour.
export const PATTERNS = ['', '/', '.', 'x', '\\', '-', '|', '+'];
export const SEQUENTIAL = 'Viridis';
export const SIGNED = 'Cividis';

// Viridis stops for drawing on canvas (matplotlib's viridis at 0, 1/8, ..., 1).
export const VIRIDIS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
  [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]];
