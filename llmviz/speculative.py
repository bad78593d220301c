"""Speculative decoding: a cheap draft guesses a few tokens, the model checks them in one pass.

The rule is exact speculative sampling (Leviathan et al. 2023, "Fast Inference from
Transformers via Speculative Decoding"; Chen et al. 2023, "Accelerating Large Language
Model Decoding with Speculative Sampling"):

    the draft proposes x_1..x_γ with distributions q_1..q_γ;
    the target scores all γ+1 positions in one forward pass, giving p_1..p_{γ+1};
    x_i is accepted with probability min(1, p_i(x_i) / q_i(x_i));
    at the first rejection the token is drawn from norm(max(0, p_i - q_i)) and the step ends;
    if all γ are accepted a bonus token is drawn from p_{γ+1}.

Every emitted token is then distributed exactly as the target's would be. With greedy
settings p_i and q_i are point masses, so the rule reads "accept while the draft equals
the target's argmax, then emit the target's argmax": the output is identical to plain
greedy decoding.

Draft sources (each a small class with propose(ids, γ, sampling, rng) and rollback(n); each
gets only what it uses: the vocabulary size, the target model and its cache, or a draft model):
    "prompt-lookup"  copy what followed the last n-gram earlier in the context (Saxena 2023,
                     "Prompt Lookup Decoding"); no model, q is a point mass
    "early-exit"     the first k layers of the same model, then its final norm and unembedding
                     (the draft half of LayerSkip, Elhoushi et al. 2024); its K/V rows for those
                     layers are the target's, so it writes into the target's own cache
    a Model          a separate smaller model sharing the tokenizer, with its own KV cache

Metrics follow vLLM: acceptance rate = accepted / proposed, mean acceptance length =
1 + accepted / drafts (tokens emitted per verify pass), per-position acceptance =
accepted at position i / drafts.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .forward import KVCache, forward
from .sampling import draw, filtered_distribution

MAX_NGRAM = 3
# A verify pass costs about three decode steps on our CPU (see docs/optimizations.md), so the
# drafter proposes only after a match of at least 2 tokens: single-token matches ("the", ",")
# on free-form text are almost never continued the same way.
MIN_NGRAM = 2


# -- the acceptance rule ------------------------------------------------------------

def pick(dist, greedy, rng):
    """One token from a distribution [V]: its argmax when greedy, else a draw with u ~ U[0, 1)."""
    if greedy:
        return int(np.argmax(dist)), None
    u = float(rng.random())
    return draw(dist, u), u


def point_masses(tokens, V):
    """[n] token ids -> [n, V] one-hot distributions (the q of a deterministic draft)."""
    q = np.zeros((len(tokens), V), np.float32)
    q[np.arange(len(tokens)), tokens] = 1.0
    return q


def verify(p, q, drafts, greedy, rng):
    """Accept or reject draft tokens (Leviathan et al. 2023, Algorithm 1).

    p [n+1, V]: the target's distributions after the last token and after each draft token;
    q [n, V]: the draft's distributions the n draft tokens were drawn from.
    -> (number accepted, the token that follows them, per-draft decisions,
        how that token was chosen: {"kind": "resample" | "bonus", "u": ..., "probs": the [V]
        distribution it was drawn from: norm(max(0, p - q)) or p})
    """
    decisions = []
    for i, x in enumerate(drafts):
        px, qx = float(p[i, x]), float(q[i, x])
        ratio = px / qx if qx > 0 else 0.0
        u = None if (greedy or ratio >= 1.0 or ratio == 0.0) else float(rng.random())
        accepted = ratio >= 1.0 or (u is not None and u < ratio)
        decisions.append({"token": int(x), "p": round(px, 6), "q": round(qx, 6), "u": u,
                          "accepted": bool(accepted)})
        if not accepted:
            residual = np.maximum(p[i] - q[i], 0.0)                     # [V]
            total = float(residual.sum())
            residual = residual / total if total > 0 else p[i]
            token, u2 = pick(residual, greedy, rng)
            return i, token, decisions, {"kind": "resample", "u": u2, "probs": residual}
    token, u = pick(p[len(drafts)], greedy, rng)
    return len(drafts), token, decisions, {"kind": "bonus", "u": u, "probs": p[len(drafts)]}


# -- draft sources -----------------------------------------------------------------------

def prompt_lookup(ids, gamma, max_ngram=MAX_NGRAM, min_ngram=1):
    """Find the last n-gram of `ids` earlier in `ids` (longest n first, max_ngram down to
    min_ngram) and return up to γ tokens that followed it; [] when nothing matches. Prefers
    the most recent match that has γ tokens after it."""
    a = np.asarray(ids, np.int64)
    for n in range(min(max_ngram, len(a) - 1), min_ngram - 1, -1):
        windows = sliding_window_view(a[:-1], n)                        # [len-n, n]: excludes the suffix itself
        hits = np.flatnonzero((windows == a[-n:]).all(axis=1))
        if hits.size:
            full = hits[hits + n + gamma <= len(a)]
            i = int(full[-1] if full.size else hits[-1])
            return a[i + n: i + n + gamma].tolist()
    return []


class PromptLookupDraft:
    name = "prompt-lookup"

    def __init__(self, vocab_size, max_ngram=MAX_NGRAM, min_ngram=MIN_NGRAM):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.V = vocab_size

    def propose(self, ids, gamma, sampling, rng):
        """-> up to γ draft tokens [n] and their point-mass distributions q [n, V]."""
        drafts = prompt_lookup(ids, gamma, self.max_ngram, self.min_ngram)
        return drafts, point_masses(drafts, self.V)

    def rollback(self, valid):
        pass


class EarlyExitDraft:
    name = "early-exit"

    def __init__(self, model, cache, n_layers=None):
        L = model.config.n_layers
        self.model, self.cache = model, cache          # the target and its own KV cache
        self.n_layers = int(n_layers or default_exit_layer(L))
        if not 0 < self.n_layers < L:
            raise ValueError(f"early exit needs 0 < layers < {L}, got {self.n_layers}")

    def propose(self, ids, gamma, sampling, rng):
        """Runs the first k layers one token at a time in the target's cache, then truncates it
        back: the verify pass recomputes (and overwrites) those rows with every layer."""
        start, token, drafts, qs = self.cache.length, ids[-1], [], []
        for _ in range(gamma):
            logits = forward(self.model, np.asarray([[token]]), [self.cache], n_layers=self.n_layers)[0, -1]
            q = filtered_distribution(logits, sampling)                  # [V]
            token, _ = pick(q, sampling.greedy, rng)
            drafts.append(token)
            qs.append(q)
        self.cache.truncate(start)
        return drafts, np.stack(qs) if qs else np.zeros((0, self.model.config.vocab_size), np.float32)

    def rollback(self, valid):
        pass


def default_exit_layer(n_layers):
    """Exit after 4/5 of the layers: an untrained exit earlier than that rarely agrees with the
    last layer on this model (measured: 1% of drafts accepted at layer 15 of 30, 18% at 24)."""
    return max(1, (4 * n_layers) // 5)


class ModelDraft:
    name = "draft-model"

    def __init__(self, draft_model, target, max_len):
        if draft_model.config.vocab_size != target.config.vocab_size or \
                draft_model.tokenizer.encode("Hello, world!") != target.tokenizer.encode("Hello, world!"):
            raise ValueError(f"the draft model {draft_model.name} does not share the tokenizer of {target.name}")
        self.model = draft_model
        self.name = f"draft-model:{draft_model.name}:{draft_model.quantization}"
        self.cache = KVCache(draft_model.config, max_len)     # the draft's own

    def propose(self, ids, gamma, sampling, rng):
        """Catches the draft's own cache up with the context (first call: the whole prompt),
        then drafts γ tokens one at a time."""
        drafts, qs = [], []
        new = ids[self.cache.length:]                                   # tokens the draft has not seen
        logits = forward(self.model, np.asarray([new]), [self.cache])[0, -1]
        for i in range(gamma):
            q = filtered_distribution(logits, sampling)                  # [V]
            token, _ = pick(q, sampling.greedy, rng)
            drafts.append(token)
            qs.append(q)
            if i < gamma - 1:
                logits = forward(self.model, np.asarray([[token]]), [self.cache])[0, -1]
        return drafts, np.stack(qs) if qs else np.zeros((0, self.model.config.vocab_size), np.float32)

    def rollback(self, valid):
        """Keep only the rows of tokens that are now part of the text."""
        self.cache.truncate(min(self.cache.length, valid))


def truncated_model(model, n_layers):
    """A separate, smaller Model made of the first n_layers of `model` (sharing its arrays and
    tokenizer): a stand-in for a distilled draft model when only one checkpoint is at hand."""
    from dataclasses import replace
    keep = {k: w for k, w in model.weights.items()
            if not k.startswith("layers.") or int(k.split(".")[1]) < n_layers}
    return replace(model, name=f"{model.name}-first{n_layers}", weights=keep,
                   config=replace(model.config, n_layers=n_layers))


def make_drafter(spec, model, cache, early_exit_layers=None):
    """None | "prompt-lookup" | "early-exit" | a Model -> a draft source (or None) for a run
    of `model` whose KV cache is `cache`."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec == "prompt-lookup":
            return PromptLookupDraft(model.config.vocab_size)
        if spec == "early-exit":
            return EarlyExitDraft(model, cache, early_exit_layers)
        raise ValueError(f"unknown speculative draft {spec!r}: use 'prompt-lookup', 'early-exit' or a Model")
    return ModelDraft(spec, model, cache.max_len)


# -- bookkeeping --------------------------------------------------------------------------

class SpecStats:
    """Counts for the vLLM-style metrics of one run."""

    def __init__(self, source, gamma):
        self.source, self.gamma = source, gamma
        self.verify_steps = 0          # forward passes of the target after the prefill
        self.drafts = 0                # verify passes that checked at least one draft token
        self.proposed = 0
        self.accepted = 0
        self.accepted_at = np.zeros(gamma, np.int64)   # [γ] accepted at draft position i
        self.proposed_at = np.zeros(gamma, np.int64)
        self.emitted = 0

    def add(self, n_proposed, n_accepted, n_emitted):
        self.verify_steps += 1
        self.emitted += n_emitted
        if n_proposed:
            self.drafts += 1
            self.proposed += n_proposed
            self.accepted += n_accepted
            self.proposed_at[:n_proposed] += 1
            self.accepted_at[:n_accepted] += 1

    def summary(self) -> dict:
        d = max(self.drafts, 1)
        return {
            "speculative": self.source,
            "num_draft_tokens": self.gamma,
            "verify_steps": self.verify_steps,
            "drafts": self.drafts,
            "proposed": self.proposed,
            "accepted": self.accepted,
            "acceptance_rate": round(self.accepted / self.proposed, 4) if self.proposed else 0.0,
            "mean_acceptance_length": round(1 + self.accepted / d, 4) if self.drafts else 1.0,
            "per_position_acceptance": [round(int(a) / d, 4) for a in self.accepted_at],
            "per_position_proposed": self.proposed_at.tolist(),
            "tokens_per_verify_step": round(self.emitted / self.verify_steps, 4) if self.verify_steps else 0.0,
        }
