"""What a preference objective changes in a step's memory: how TRL batches the pairs and scores them.

Supervised runs keep the terms of :mod:`studio.core.memory.estimator`. The preference trainers the
engine uses (``training.preference``, TRL 1.16) differ in three ways, each counted here:

* **Both answers in one forward.** DPO's ``DataCollatorForPreference`` and ORPO's
  ``concatenated_inputs`` stack prompt+chosen and prompt+rejected of every pair into one batch of
  2 x batch rows, padded to the longest of them (``Plan.forward_rows`` x ``Plan.width``), so the saved
  activations are those of twice the rows (``terms._activations``).
* **How the vocabulary is scored.** DPO calls the model with ``fused_lm_head=True``
  (``trl.trainer.utils.add_fused_lm_head``): ``ChunkedLogProbFunction`` projects the hidden states
  onto the vocabulary in tiles of at most 4096 tokens x 32768 entries and keeps only per-token
  statistics, so no (tokens x vocabulary) logits exist; it saves a copy of the hidden states, and its
  backward recomputes each tile and accumulates the hidden-state gradient in fp32. On a GPU a Triton
  kernel folds each tile; elsewhere the fold runs as torch operations that hold several fp32 copies
  of the tile at once. ORPO instead takes the model's full logits for all 2 x batch rows, copies the
  chosen half for its NLL term (``cross_entropy`` keeps an fp32 log-softmax of it) and gathers every
  row's log-probabilities; its backward builds the logits' gradient from both paths.
* **DPO's reference forward.** ``DPOTrainer._compute_loss`` runs the policy forward (activations
  kept), then the same batch through the base with the adapter switched off under ``no_grad``, then
  the backward. The reference pass keeps nothing, but its working set — one decoder layer's
  intermediates at a time, then the fused head's tiles — sits on top of the policy's saved
  activations. ``PhaseMeter`` measures it in the backward phase (the forward hook fires at the end of
  the policy forward), so the estimate counts it there. ORPO has no reference pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.config import PREFERENCE_OBJECTIVES
from studio.core.memory.constants import (
    FP32,
    LOSS_BACKWARD_BYTES,
    ORPO_LOGIT_GRAD_COPIES,
    TRL_FUSED_HEAD_BWD_FP32_TILES,
    TRL_FUSED_HEAD_FWD_FP32_TILES,
    TRL_FUSED_HEAD_TOKEN_TILE,
    TRL_FUSED_HEAD_VOCAB_TILE,
)
from studio.core.memory.plan import Plan
from studio.core.models.introspect import ModelInfo

OBJECTIVE_NAMES = {"dpo": "DPO", "orpo": "ORPO"}


@dataclass(frozen=True)
class ObjectiveTerms:
    """The objective's share of each phase, in bytes for the widest batch.

    ``logits_forward`` is alive at the end of the forward pass, ``logits_backward`` during the loss
    backward (both replace the supervised logits-and-loss terms); ``reference`` is the transient peak
    of DPO's reference forward, on top of the saved activations (0 without a reference pass).
    """

    logits_forward: int
    logits_backward: int
    reference: int = 0


def is_preference(p: Plan) -> bool:
    return p.objective in PREFERENCE_OBJECTIVES


def objective_terms(info: ModelInfo, p: Plan, logits_dtype: int, res_dtype: int) -> ObjectiveTerms | None:
    """The preference terms of ``p`` (None for a supervised run: the estimator's own terms apply).

    ``logits_dtype`` is the bytes per element the head computes in (the autocast dtype on a GPU),
    ``res_dtype`` those of the residual stream (the head's input).
    """
    if p.objective == "dpo":
        return _dpo(info, p, logits_dtype, res_dtype)
    if p.objective == "orpo":
        return _orpo(info, p, logits_dtype)
    return None


def _head_tiles(info: ModelInfo, p: Plan, logits_dtype: int, fp32_tiles: int) -> int:
    """One (tokens x vocabulary) tile of the fused head, with the fp32 temporaries the torch fold holds
    (the Triton kernel on CUDA folds in registers: the tile alone)."""
    tokens = p.forward_rows * p.width
    tile = min(tokens, TRL_FUSED_HEAD_TOKEN_TILE) * min(info.vocab_size, TRL_FUSED_HEAD_VOCAB_TILE)
    return tile * (logits_dtype + (0 if p.device == "cuda" else fp32_tiles * FP32))


def _dpo(info: ModelInfo, p: Plan, logits_dtype: int, res_dtype: int) -> ObjectiveTerms:
    tokens = p.forward_rows * p.width  # an upper bound on CUDA, where only answer positions are scored
    hidden = tokens * info.hidden_size * res_dtype  # the head's own copy of its input, saved for backward
    forward = hidden + _head_tiles(info, p, logits_dtype, TRL_FUSED_HEAD_FWD_FP32_TILES)
    # backward: the recomputed tile and the fold's temporaries, the fp32 gradient of the hidden states
    # and its cast back to the residual dtype
    backward = (hidden + _head_tiles(info, p, logits_dtype, TRL_FUSED_HEAD_BWD_FP32_TILES)
                + tokens * info.hidden_size * (FP32 + res_dtype))
    return ObjectiveTerms(logits_forward=forward, logits_backward=backward,
                          reference=reference_forward_bytes(info, p, logits_dtype, res_dtype))


def reference_forward_bytes(info: ModelInfo, p: Plan, logits_dtype: int, res_dtype: int) -> int:
    """Peak working set of a forward under ``no_grad`` (DPO's reference pass, adapter off).

    Nothing is kept for backward, so at any moment only one decoder layer's intermediates are alive:
    the residual stream in and out, the norm's fp32 upcast, and the wider of attention (q, k, v and
    the output) and the MLP (activation, up projection and their product). Then the fused head's tile
    on the final hidden states, which the head copies.
    """
    tokens = p.forward_rows * p.width
    h = info.hidden_size
    q_dim = info.num_heads * info.head_dim
    kv_dim = info.num_kv_heads * info.head_dim
    attn = logits_dtype * (2 * q_dim + 2 * kv_dim)
    mlp = logits_dtype * (3 if info.mlp_gated else 2) * info.intermediate_size
    layer = tokens * (2 * res_dtype * h + FP32 * h + max(attn, mlp))
    head = 2 * tokens * h * res_dtype + _head_tiles(info, p, logits_dtype, TRL_FUSED_HEAD_FWD_FP32_TILES)
    return int(max(layer, head))


def _orpo(info: ModelInfo, p: Plan, logits_dtype: int) -> ObjectiveTerms:
    full = p.forward_rows * p.width * info.vocab_size  # logits of chosen and rejected rows
    half = full // 2  # the chosen rows, for the NLL term
    upcast = half * FP32 if logits_dtype < FP32 else 0  # cross_entropy's fp32 copy under autocast
    # logits + the chosen half's contiguous copy + its fp32 log-softmax
    forward = full * logits_dtype + half * logits_dtype + upcast + half * FP32
    # the chosen half's loss backward as in a supervised run, plus the gradients of the full logits the
    # gather and the slices build before autograd sums them (in the logits' dtype)
    backward = full * logits_dtype + half * LOSS_BACKWARD_BYTES + ORPO_LOGIT_GRAD_COPIES * full * logits_dtype
    return ObjectiveTerms(logits_forward=int(forward), logits_backward=int(backward))


def objective_words(objective: str, rows: int, width: int) -> str:
    """What the estimate assumed for the objective, in the user's words ("" for supervised runs)."""
    if objective not in PREFERENCE_OBJECTIVES:
        return ""
    name = OBJECTIVE_NAMES.get(objective, objective.upper())
    batch = f"chosen and rejected in one batch (2 × {rows} rows × {width} tokens)"
    if objective == "dpo":
        return f"{name}: {batch} + a reference forward (the base, adapter off)"
    return f"{name}: {batch}, full logits for both, no reference forward"
