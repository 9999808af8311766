"""Why an adapter run can need more memory than full fine-tuning, in the breakdown's own terms.

On a small model the weights are cheap and activations dominate: an adapted Linear keeps its own
copy of its input (a dropout output and, on CPU, the dropout noise; or a cast to the fp32 adapter),
which full fine-tuning does not, while full fine-tuning's extra gradients and optimizer states are
small. The user sees "LoRA 2.1 GiB, full 1.9 GiB" and deserves the term that causes it.
"""

from __future__ import annotations

from studio.core.formatting import format_bytes
from studio.core.memory.estimator import Estimate

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
