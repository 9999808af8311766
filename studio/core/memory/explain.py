"""Why an adapter run can need more memory than full fine-tuning, in the breakdown's own terms.

On a small model the weights are cheap and activations dominate: an adapted Linear keeps its own
copy of its input (a dropout output and, on CPU, the dropout noise; or a cast to the fp32 adapter),
which full fine-tuning does not, while full fine-tuning's extra gradients and optimizer states are
small. The user sees "LoRA 2.1 GiB, full 1.9 GiB" and deserves the term that causes it.
"""

from __future__ import annotations

from studio.core.formatting import format_bytes
from studio.core.memory.estimator import Estimate
from studio.core.memory.objective import objective_words

TERM_WORDS = {
    "weights": "base weights",
    "adapter": "adapter weights",
    "gradients": "gradients",
    "optimizer": "optimizer states",
    "activations": "saved activations (each adapted layer keeps a copy of its input for the adapter"
                   " — two with dropout on CPU — which full fine-tuning does not)",
    "logits": "logits and loss",
    "overhead": "process and workspace (the allocator keeps part of what each step frees)",
}


def versus_full(est: Estimate, full: Estimate) -> str | None:
    """A sentence naming the term that puts ``est`` above ``full``; None when it is not above."""
    if est.method == "full" or est.total_bytes <= full.total_bytes:
        return None
    excess = {k: est.bytes.get(k, 0) - full.bytes.get(k, 0) for k in est.bytes}
    term = max(excess, key=lambda k: excess[k])
    return (f"{est.method.upper() if est.method == 'qlora' else 'LoRA'} peaks "
            f"{format_bytes(est.total_bytes - full.total_bytes)} above full fine-tuning here: "
            f"{TERM_WORDS.get(term, term)} take {format_bytes(excess[term])} more.")


def objective_line(est: Estimate) -> str:
    """What a preference objective adds to the estimate, in words and bytes ("" for supervised runs):
    a user who switches SFT to DPO sees the figure jump and deserves to know why."""
    words = objective_words(est.objective, est.batch_rows, est.batch_tokens)
    if not words:
        return ""
    parts = est.objective_parts
    costs = [f"the rejected answers add {format_bytes(parts.get('rejected_activations', 0))} of activations"]
    if parts.get("reference_forward"):
        costs.append(f"the reference forward takes {format_bytes(parts['reference_forward'])} while it runs")
    return f"{words}: " + ", ".join(costs) + "."


def batch_shape(est: Estimate) -> str:
    """The widest batch as the user sets it: "4 rows × 73 tokens", or for pairs "4 pairs (8 rows) × 73 tokens"."""
    if est.forward_rows != est.batch_rows:
        return f"{est.batch_rows} pairs ({est.forward_rows} rows) × {est.batch_tokens} tokens"
    return f"{est.batch_rows} rows × {est.batch_tokens} tokens"
