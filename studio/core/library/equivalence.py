"""Proof that an export computes what was trained: the same prompts through both, numbers compared.

The reference (base + adapter, unmerged) greedily continues each prompt; both models are then run
teacher-forced on exactly those sequences. Agreement is the share of continuation positions where
the candidate's argmax equals the reference's. At 100 % greedy decoding is token-for-token
identical (each step sees the same prefix and picks the same token), so one forward pass per
prompt proves what free-running generation would show, without its cost.

Relative difference is ``max|a - b| / max|a|`` over all compared logits: element-wise ratios blow up
on logits near zero, while a scale-normalised error says how large the error is next to the logits
that decide the token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.heavy_imports import ensure

DEFAULT_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain in one sentence what a neural network is.",
    "List three prime numbers.",
)
DEFAULT_NEW_TOKENS = 16



@dataclass(frozen=True)
class Rule:
    """When a candidate passes. ``tie_band``: a disagreement where the reference's own top-2 margin is
    below this share of its logit scale is a near-tie that rounding may legitimately flip; it is
    counted and reported, but does not fail a 16-bit export. The band is fixed per format in advance,
    never derived from the measured error, so a broken export cannot excuse itself."""

    identical: bool  # every decisive position must agree
    max_rel: float | None  # bound on the relative logit difference
    min_agreement: float  # share of all positions that must agree
    tie_band: float = 0.0

    def describe(self) -> str:
        parts = []
        if self.identical:
            parts.append("greedy tokens identical" + (
                f" wherever the reference is decisive (top-2 margin ≥ {self.tie_band:g} of logit scale)"
                if self.tie_band else ""))
        if 0.0 < self.min_agreement < 1.0:
            parts.append(f"agreement ≥ {self.min_agreement * 100:.0f}%")
        if self.max_rel is not None:
            parts.append(f"relative logit diff ≤ {self.max_rel:g}")
        return " and ".join(parts)


# fp32 merge: exact up to summation order. 16-bit: rounding moves logits by ~0.5-2 % of their scale
# (measured: 0.6 % on SmolLM2-135M bf16), so tokens are held identical except at near-ties, and the
# logit bound catches gross errors (a wrong Q/K permutation is O(1)). q8_0 loses enough precision
# that a share is the honest measure (measured: 98.4 % on SmolLM2-135M).
_SIXTEEN = Rule(identical=True, max_rel=0.05, min_agreement=0.0, tie_band=0.03)
THRESHOLDS: dict[str, Rule] = {
    "fp32": Rule(identical=True, max_rel=1e-4, min_agreement=1.0),
    "bf16": _SIXTEEN,
    "fp16": _SIXTEEN,
    "f16": _SIXTEEN,
    "q8_0": Rule(identical=False, max_rel=None, min_agreement=0.9),
    # llama.cpp's 4-bit k-quant: measured 89 % on the SmolLM2-135M demo export; a broken file scores ~0 %.
    "q4_k_m": Rule(identical=False, max_rel=None, min_agreement=0.75),
}

LogitsFn = Callable[[Any], Any]  # LongTensor [1, T] -> FloatTensor [1, T, V]


@dataclass
class ReferenceTrace:
    """What the reference produced: token sequences and their logits, kept so the model can go."""

    prompts: list[str]
    prompt_lengths: list[int]
    sequences: list[list[int]]  # prompt ids + greedy continuation
    logits: list[Any] = field(repr=False)  # FloatTensor [T, V] per prompt, fp32 on CPU
    new_tokens: int = DEFAULT_NEW_TOKENS


@dataclass
class EquivalenceReport:
    label: str
    kind: str
    prompts: int
    new_tokens: int
    max_abs_diff: float
    max_rel_diff: float
    agreement: float  # share of continuation positions where both models' argmax agree
    greedy_identical: bool
    near_tie_flips: int  # disagreements where the reference itself was within the tie band
    tokenizer_identical: bool | None  # GGUF candidates carry their own tokenizer; None when not checked
    passed: bool
    rule: str
    per_prompt_agreement: list[float] = field(default_factory=list)
    decisive_misses: int = 0  # disagreements where the reference was not near a tie
    # Judged in the export's dtype (see ``judge_in_dtype``): what that dtype costs without any merge.
    dtype_agreement: float | None = None
    dtype_rel_diff: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        tok = "" if self.tokenizer_identical is None else f", tokenizer {'identical' if self.tokenizer_identical else 'DIFFERS'}"
        if self.near_tie_flips:
            tok += f", {self.near_tie_flips} flip(s) at near-ties"
        dtype = ("" if self.dtype_agreement is None else
                 f"; {self.kind} itself, unmerged: agreement {self.dtype_agreement * 100:.1f}%, relative "
                 f"{self.dtype_rel_diff:.3g}")
        return (
            f"{verdict} {self.label}: greedy agreement {self.agreement * 100:.1f}% over {self.prompts}×{self.new_tokens} "
            f"tokens, max |Δlogit| {self.max_abs_diff:.3g} (relative {self.max_rel_diff:.3g}){tok}{dtype}; "
            f"rule: {self.rule}"
        )


def chat_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of ``prompt`` as a user turn, the way the model sees it in chat."""
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
        )
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return [int(i) for i in out]
    return [int(i) for i in tokenizer(prompt)["input_ids"]]


def _as_logits_fn(model_or_fn: Any) -> LogitsFn:
    if hasattr(model_or_fn, "forward") and hasattr(model_or_fn, "eval"):
        model = model_or_fn
        model.eval()

        def run(ids: Any) -> Any:
            return model(input_ids=ids, use_cache=False).logits

        return run
    if callable(model_or_fn):
        return model_or_fn
    raise TypeError(f"expected a model or a callable, got {type(model_or_fn).__name__}")


def _greedy_continue(model_or_fn: Any, ids: list[int], new_tokens: int) -> list[int]:
    """``ids`` plus ``new_tokens`` greedy tokens; with a KV cache when the reference is an HF model."""
    import torch

    ids = list(ids)
    if new_tokens <= 0:
        return ids
    if hasattr(model_or_fn, "forward") and hasattr(model_or_fn, "eval"):
        out = model_or_fn(input_ids=torch.tensor([ids]), use_cache=True)
        for step in range(new_tokens):
            nxt = int(out.logits[0, -1].float().argmax())
            ids.append(nxt)
            if step + 1 < new_tokens:
                out = model_or_fn(input_ids=torch.tensor([[nxt]]), past_key_values=out.past_key_values, use_cache=True)
        return ids
    fn = _as_logits_fn(model_or_fn)
    for _ in range(new_tokens):
        ids.append(int(fn(torch.tensor([ids]))[0, -1].float().argmax()))
    return ids


def reference_trace(
    reference: Any, tokenizer: Any, prompts: Sequence[str] = DEFAULT_PROMPTS, *, new_tokens: int = DEFAULT_NEW_TOKENS
) -> ReferenceTrace:
    """Greedy-continue each prompt with the reference and keep the logits of the whole sequence.

    The continuation (KV-cached, so cheap) only supplies realistic inputs; what is compared later is
    the argmax of one full forward pass of each model on the same sequence, so cached and uncached
    arithmetic never get compared with each other.
    """
    import torch

    if hasattr(reference, "eval"):
        reference.eval()
    fn = _as_logits_fn(reference)
    seqs, lens, logits = [], [], []
    with torch.inference_mode():
        for prompt in prompts:
            ids = chat_ids(tokenizer, prompt)
            lens.append(len(ids))
            ids = _greedy_continue(reference, ids, new_tokens)
            seqs.append(ids)
            logits.append(fn(torch.tensor([ids]))[0].float().cpu())
    return ReferenceTrace(list(prompts), lens, seqs, logits, new_tokens)


def _load_candidate(candidate: Path, dtype: Any) -> tuple[Any, Any | None]:
    """A saved export as (model, its own tokenizer when it carries one)."""
    ensure()
    from transformers import AutoModelForCausalLM

    candidate = Path(candidate)
    try:
        if candidate.suffix == ".gguf":
            folder, name = str(candidate.parent), candidate.name
            from studio.core.models.gguf_import import gguf_tokenizer

            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
            # Read as the studio imports a GGUF: with the split rules the file names, which
            # transformers' own reader misses for some ("smollm").
            tok, _fixes = gguf_tokenizer(candidate)
            return model, tok
        return AutoModelForCausalLM.from_pretrained(str(candidate), dtype=dtype), None
    except Exception as err:
        raise StudioError(
            "The exported model could not be loaded back for the equivalence check, so it is not usable as written.",
            detail=f"{type(err).__name__}: {err}", path=candidate,
        ) from None


def check_equivalence(
    reference: Any,
    candidate: Any,
    tokenizer: Any,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    *,
    kind: str = "fp32",
    label: str = "export",
    new_tokens: int = DEFAULT_NEW_TOKENS,
    dtype: Any = None,
    candidate_chat_ids: Sequence[Sequence[int]] | None = None,
    keep_logits: list | None = None,
) -> EquivalenceReport:
    """Compare ``candidate`` with ``reference`` on ``prompts`` (chat template applied).

    ``reference``: a model, a callable ``ids -> logits``, or a ``ReferenceTrace`` computed earlier
    (the export computes it before merging, so one model load serves both). ``candidate``: a model,
    a callable, or a path to an HF folder or ``.gguf`` file, which is loaded the way users will.
    ``kind`` picks the pass rule from ``THRESHOLDS``. ``candidate_chat_ids``: how a candidate with a
    tokenizer of its own (llama.cpp) tokenized each prompt's chat text; compared with ours.
    """
    import torch

    if kind not in THRESHOLDS:
        raise ValueError(f"unknown kind {kind!r}; one of {sorted(THRESHOLDS)}")
    trace = reference if isinstance(reference, ReferenceTrace) else reference_trace(
        reference, tokenizer, prompts, new_tokens=new_tokens
    )
    tokenizer_identical: bool | None = None
    if isinstance(candidate, (str, Path)):
        model, own_tok = _load_candidate(Path(candidate), dtype or torch.float32)
        if own_tok is not None:
            tokenizer_identical = all(chat_ids(own_tok, p) == chat_ids(tokenizer, p) for p in trace.prompts)
        fn = _as_logits_fn(model)
    else:
        model, fn = None, _as_logits_fn(candidate)
    if candidate_chat_ids is not None:
        tokenizer_identical = all(list(map(int, got)) == chat_ids(tokenizer, p)
                                  for got, p in zip(candidate_chat_ids, trace.prompts, strict=True))

    rule = THRESHOLDS[kind]
    max_abs, ref_scale, hits, total, ties, decisive_misses, per_prompt = 0.0, 0.0, 0, 0, 0, 0, []
    with torch.inference_mode():
        for ids, plen, ref in zip(trace.sequences, trace.prompt_lengths, trace.logits, strict=True):
            got = fn(torch.tensor([ids]))[0].float().cpu()
            if keep_logits is not None:
                keep_logits.append(got)
            if got.shape != ref.shape:
                raise StudioError(
                    f"The exported model's output shape {tuple(got.shape)} differs from the reference {tuple(ref.shape)}; "
                    "its vocabulary or architecture does not match the trained model."
                )
            max_abs = max(max_abs, float((got - ref).abs().max()))
            scale = float(ref.abs().max())
            ref_scale = max(ref_scale, scale)
            # Position t predicts token t+1: compare the two models' choices over the continuation.
            window = slice(plen - 1, len(ids) - 1)
            predicted, wanted = got[window].argmax(-1), ref[window].argmax(-1)
            top2 = ref[window].topk(2, dim=-1).values
            near_tie = (top2[:, 0] - top2[:, 1]) < rule.tie_band * scale
            miss = predicted != wanted
            ties += int((miss & near_tie).sum())
            decisive_misses += int((miss & ~near_tie).sum())
            agree = int((~miss).sum())
            hits, total = hits + agree, total + len(wanted)
            per_prompt.append(agree / max(1, len(wanted)))
    del model
    agreement = hits / max(1, total)
    rel = max_abs / ref_scale if ref_scale > 0 else max_abs
    passed = agreement >= rule.min_agreement and not (rule.identical and decisive_misses)
    if rule.max_rel is not None:
        passed = passed and rel <= rule.max_rel
    if tokenizer_identical is False:
        passed = False
    return EquivalenceReport(
        label=label, kind=kind, prompts=len(trace.sequences), new_tokens=trace.new_tokens,
        max_abs_diff=max_abs, max_rel_diff=rel, agreement=agreement, greedy_identical=agreement == 1.0,
        near_tie_flips=ties, tokenizer_identical=tokenizer_identical, passed=passed, rule=rule.describe(),
        per_prompt_agreement=per_prompt, decisive_misses=decisive_misses,
    )


# A merge in a 16-bit dtype may cost at most this much more than the dtype itself costs unmerged.
DTYPE_REL_FACTOR, DTYPE_REL_FLOOR, DTYPE_AGREEMENT_SLACK = 2.0, 0.005, 0.05


def judge_in_dtype(merged: EquivalenceReport, unmerged: EquivalenceReport) -> EquivalenceReport:
    """Judge a merged export in dtype D by what D itself costs, not against fp32 alone.

    ``merged``: the written model (weights rounded to D) against the fp32 base + adapter. ``unmerged``:
    base + adapter computed in D, without any merge, against the same fp32 reference. A bf16 model
    answers a little differently from fp32 whether or not it was merged; the merge passes when it adds
    no error beyond that: relative logit error at most 2x D's own (plus 0.005), greedy agreement at
    most 5 points below D's own, and an identical tokenizer. Fixed in advance, never fitted to a run.
    """
    from dataclasses import replace

    passed = (merged.tokenizer_identical is not False
              and merged.max_rel_diff <= DTYPE_REL_FACTOR * unmerged.max_rel_diff + DTYPE_REL_FLOOR
              and merged.agreement >= unmerged.agreement - DTYPE_AGREEMENT_SLACK)
    rule = (f"no more error than {merged.kind} itself costs: relative logit diff ≤ {DTYPE_REL_FACTOR:g}× the "
            f"unmerged {merged.kind} model's + {DTYPE_REL_FLOOR:g}, agreement ≥ its own − "
            f"{DTYPE_AGREEMENT_SLACK * 100:.0f} points")
    return replace(merged, passed=passed, rule=rule, dtype_agreement=unmerged.agreement,
                   dtype_rel_diff=unmerged.max_rel_diff)


def adapter_effect_kept(trace: ReferenceTrace, base_logits: Sequence[Any], candidate_logits: Sequence[Any]) -> float | None:
    """How much of what the adapter changes in the logits survives in the candidate (1.0 = all of it):
    the candidate's change from the base projected on the reference's, ⟨c − b, r − b⟩ / ‖r − b‖², over
    the compared positions. Rounding noise is mostly orthogonal to the adapter's change, so it does
    not count as "kept". None when the adapter changes next to nothing (an untrained adapter)."""
    dot = change = scale = 0.0
    for ids, plen, ref, base, got in zip(trace.sequences, trace.prompt_lengths, trace.logits, base_logits,
                                         candidate_logits, strict=True):
        window = slice(plen - 1, len(ids) - 1)
        delta = (ref[window] - base[window]).double()
        dot += float(((got[window] - base[window]).double() * delta).sum())
        change += float((delta * delta).sum())
        scale += float((ref[window].double() ** 2).sum())
    if scale == 0 or change < 1e-6 * scale:
        return None
    return dot / change


def check_in_llamacpp(trace: ReferenceTrace, gguf: Path, tokenizer: Any, *, kind: str, label: str) -> EquivalenceReport:
    """The proof with llama.cpp as the candidate: its logits on the reference's sequences, and its own
    tokenization of each prompt's chat text (a wrong pre-tokenizer or vocabulary shows up there)."""
    import torch

    from studio.core.library.llamacpp_runner import gguf_logits

    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                           tokenize=False) if getattr(tokenizer, "chat_template", None) else p
             for p in trace.prompts]
    logits, tokens = gguf_logits(Path(gguf), [list(map(int, s)) for s in trace.sequences], texts)
    by_sequence = {tuple(s): t for s, t in zip(trace.sequences, logits, strict=True)}

    def run(ids: Any) -> Any:
        return by_sequence[tuple(int(i) for i in ids[0])].unsqueeze(0).to(torch.float32)

    return check_equivalence(trace, run, tokenizer, kind=kind, label=label, candidate_chat_ids=tokens)
