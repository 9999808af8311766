"""The terms of the estimate: parameter storage, optimizer states, saved activations, fixed costs.

Each function is a physical count for one :class:`~studio.core.memory.plan.Plan`; the estimator
(:mod:`studio.core.memory.estimator`) combines them into phases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from studio.core.memory.constants import (
    ADAM8_BLOCK,
    ADAM8_MIN_SIZE,
    ADAM8_QMAP_BYTES,
    ADAM_STATES,
    ADAPTER_BYTES,
    BWD_MLP_GRADS,
    BWD_RESIDUAL_GRADS,
    CPU_ALLOCATOR_RETENTION,
    CPU_HEAP_ALLOCATION_MAX,
    CPU_PROCESS_BASELINE_BYTES,
    CUDA_CONTEXT_BYTES,
    CUDA_DROPOUT_MASK_BYTES,
    DPO_REFERENCE_RETENTION,
    DTYPE_BYTES,
    EAGER_DROPOUT_MASK_BYTES,
    EAGER_SOFTMAX_BYTES,
    FP32,
    NF4_BLOCK,
    NF4_CODE_BYTES,
    NF4_DQ_BLOCK,
    NF4_DQ_TENSOR_BYTES,
    NORM_FP32_BYTES,
    SDPA_LSE_BYTES,
)
from studio.core.memory.plan import Plan
from studio.core.models.introspect import LinearModule, ModelInfo

# Parameters and their storage


def lora_params(module: LinearModule, r: int, dora: bool) -> int:
    """LoRA A (r x d_in) + B (d_out x r); DoRA adds a magnitude vector of d_out."""
    return module.count * (r * (module.d_in + module.d_out) + (module.d_out if dora else 0))


def nf4_bytes(numel: int, *, double_quant: bool) -> int:
    """Storage of one 4-bit weight as bitsandbytes quantize_4bit lays it out (NF4 and FP4 alike)."""
    blocks = math.ceil(numel / NF4_BLOCK)
    packed = math.ceil(numel / 2)
    if double_quant:
        stats = blocks * 1 + math.ceil(blocks / NF4_DQ_BLOCK) * FP32 + NF4_DQ_TENSOR_BYTES
    else:
        stats = blocks * FP32
    return packed + stats + NF4_CODE_BYTES


def adam8_bytes(numel: int) -> int:
    """Both Adam states of one tensor under bitsandbytes' blockwise 8-bit optimizers."""
    if numel < ADAM8_MIN_SIZE:
        return ADAM_STATES * numel * FP32
    return ADAM_STATES * (numel + math.ceil(numel / ADAM8_BLOCK) * FP32 + ADAM8_QMAP_BYTES)


def _adapter_tensors(m: LinearModule, p: Plan) -> list[int]:
    sizes = [p.r * m.d_in, m.d_out * p.r]
    if p.dora:
        sizes.append(m.d_out)
    return sizes


def _weights_bytes(info: ModelInfo, p: Plan) -> int:
    wb = DTYPE_BYTES[p.dtype]
    if p.method != "qlora":
        return info.total_params * wb
    quant = sum(m.count * nf4_bytes(m.d_in * m.d_out, double_quant=p.double_quant) for m in info.linear_modules)
    # prepare_model_for_kbit_training upcasts every non-quantised parameter (embeddings, head,
    # norms, biases) to fp32.
    return quant + info.other_params * FP32


def _optimizer_bytes(info: ModelInfo, p: Plan, adapted: list[LinearModule]) -> int:
    eight_bit = p.optimizer in ("adamw_8bit", "paged_adamw_8bit")
    if p.method == "full":
        sb = DTYPE_BYTES[p.dtype]  # torch AdamW keeps states in the parameter dtype
        if not eight_bit:
            return info.total_params * ADAM_STATES * sb
        vec_size = info.vector_params // max(info.vector_tensors, 1)
        matrices = info.total_params - info.vector_params
        n_mat = max(info.param_tensors - info.vector_tensors, 1)
        return n_mat * adam8_bytes(matrices // n_mat) + info.vector_tensors * adam8_bytes(vec_size)
    total = 0
    for m in adapted:
        for n in _adapter_tensors(m, p):
            total += m.count * (adam8_bytes(n) if eight_bit else ADAM_STATES * n * ADAPTER_BYTES)
    return total


# ---------------------------------------------------------------------------------------------
# Activations


@dataclass(frozen=True)
class _ActDtypes:
    res: int  # residual stream / norm outputs
    attn: int  # q, k, v and attention output as attention saves them
    mlp: int  # MLP intermediates
    logits: int
    lora_copy: int  # bytes per input element an adapted module keeps beyond the shared input
    lora_mid: int  # bytes per element of lora_A's output (kept by lora_B)
    shared: bool  # lora_A keeps the very tensor the base layer received (no copy)


def _act_dtypes(p: Plan) -> _ActDtypes:
    wb = DTYPE_BYTES[p.dtype]
    ac = wb if p.autocast else None
    if p.method == "qlora":
        # Non-quantised weights are fp32 (prepare_model_for_kbit_training), so the residual stream is
        # fp32; Linear4bit casts its output back to its input's dtype (fp32). Under autocast the
        # attention inputs are cast down to the compute dtype before SDPA keeps them.
        res, mlp = FP32, FP32
        attn = ac or FP32
        logits = ac or FP32
    else:
        res = wb
        attn = mlp = ac or wb
        logits = ac or wb
    in_dtype = res
    if p.dropout > 0:
        if p.device == "cuda":
            # fp32 dropout output is cast to the autocast dtype (kept by lora_A) + bool mask
            copy = (ac or max(in_dtype, ADAPTER_BYTES)) + CUDA_DROPOUT_MASK_BYTES
        else:
            drop_dtype = max(in_dtype, ADAPTER_BYTES)  # PEFT casts the input to the adapter dtype first
            copy = 2 * drop_dtype  # output + noise of the same dtype
        shared = False
    elif ac is not None:
        copy, shared = ac, False  # autocast makes a compute-dtype copy for lora_A
    elif in_dtype != ADAPTER_BYTES:
        copy, shared = ADAPTER_BYTES, False  # PEFT casts the input to the fp32 adapter
    else:
        copy, shared = 0, True
    return _ActDtypes(res=res, attn=attn, mlp=mlp, logits=logits, lora_copy=copy, lora_mid=ac or ADAPTER_BYTES,
                      shared=shared)


def _layer_activation_bytes_per_token(info: ModelInfo, p: Plan, adapted: list[LinearModule], d: _ActDtypes) -> float:
    """Bytes autograd keeps for one decoder layer, per token (batch x sequence position)."""
    h, layers = info.hidden_size, max(info.num_layers, 1)
    q_dim = info.num_heads * info.head_dim
    kv_dim = info.num_kv_heads * info.head_dim
    full = p.method == "full"
    roles_shared = {m.role for m in adapted} if d.shared else set()

    def norm(consumer_role: str) -> float:
        saved = NORM_FP32_BYTES * h
        if full:
            saved += d.res * h  # normalised input kept for the norm weight's gradient
        if full or consumer_role in roles_shared:
            saved += d.res * h  # the output, kept by the projections it feeds
        return saved

    out = norm("attn_in") + norm("mlp_in")
    # attention: rotated q, k and v, and the output (o_proj's input is a view of it)
    out += d.attn * (q_dim + 2 * kv_dim)
    if info.attn_implementation == "eager":
        per_score = EAGER_SOFTMAX_BYTES + (d.attn if d.attn < FP32 else 0) + EAGER_DROPOUT_MASK_BYTES
        out += info.num_heads * p.width * per_score
        if full or "attn_out" in roles_shared:
            out += d.attn * q_dim  # transpose + reshape copy feeding o_proj
    else:
        out += d.attn * q_dim + SDPA_LSE_BYTES * info.num_heads
    inter = info.intermediate_size
    if info.mlp_gated:
        out += 3 * d.mlp * inter  # gate output, activation output, up output
    else:
        out += d.mlp * inter  # up output, kept by the activation
    if full or "mlp_out" in roles_shared:
        out += d.mlp * inter  # the down projection's input
    for m in adapted:
        per_layer = m.count / layers
        extra = d.lora_copy * m.d_in + d.lora_mid * p.r
        if p.dora:
            extra += 2 * d.mlp * m.d_out  # base and LoRA results, kept by the magnitude scaling
        out += per_layer * extra
    return out


def _activations(info: ModelInfo, p: Plan, adapted: list[LinearModule]) -> tuple[int, int, _ActDtypes]:
    """(saved activations, backward workspace) in bytes for the whole batch."""
    d = _act_dtypes(p)
    tokens = p.forward_rows * p.width
    h = info.hidden_size
    layer = _layer_activation_bytes_per_token(info, p, adapted, d)
    # final norm (+ the head's input when the head trains)
    tail = NORM_FP32_BYTES * h + (2 * d.res * h if p.method == "full" else 0)
    if info.attn_implementation == "eager":
        tail += d.attn * p.width  # the additive causal mask (batch x seq x seq)
    if p.grad_ckpt:
        saved = info.num_layers * d.res * h + tail  # each checkpointed layer keeps only its input
        rope = 0
    else:
        saved = info.num_layers * layer + tail
        rope = 2 * p.width * info.head_dim * d.attn  # rotary cos/sin, shared by the batch and the layers
    width = 2 * info.intermediate_size if info.mlp_gated else info.intermediate_size
    workspace = BWD_RESIDUAL_GRADS * d.res * h + BWD_MLP_GRADS * d.mlp * width / 2
    if p.grad_ckpt:
        workspace += layer  # one layer recomputed during backward
    return int(saved * tokens + rope), int(workspace * tokens), d


def _overhead_parts(info: ModelInfo, p: Plan, adapted: list[LinearModule]) -> dict[str, int]:
    """The fixed cost of the process, by cause (it is the same in every phase)."""
    if p.device == "cuda":
        return {"cuda_context": CUDA_CONTEXT_BYTES}
    parts = {"process": CPU_PROCESS_BASELINE_BYTES, "mapped_weight_files": 0, "allocator_retention": 0}
    file_bytes = DTYPE_BYTES.get(info.config_dtype or "float32", FP32)
    if p.method == "qlora" and file_bytes == DTYPE_BYTES[p.dtype]:
        # safetensors are memory-mapped; the unconverted fp32/16-bit parameters stay views of the
        # mapping, which keeps the file pages read while quantising the Linears resident (clean,
        # reclaimable page cache, but counted in the resident set).
        parts["mapped_weight_files"] = info.linear_weight_params * file_bytes
    produced, _, _ = _activations(info, replace(p, grad_ckpt=False), adapted)
    retained = CPU_ALLOCATOR_RETENTION * produced
    parts["allocator_retention"] = int(max(0.0, retained - _heap_reuse(info, p, adapted)))
    if p.objective == "dpo":
        saved, _, _ = _activations(info, p, adapted)
        parts["reference_pass_retention"] = int(DPO_REFERENCE_RETENTION * saved)
    return parts


def _heap_reuse(info: ModelInfo, p: Plan, adapted: list[LinearModule]) -> int:
    """Bytes of gradients and optimizer states that glibc places in the heap the forward pass's
    freed activations left behind: they are allocated after that memory was freed (gradients in the
    backward pass, Adam's states at the first step) and each tensor below the mmap threshold takes a
    kept chunk instead of new pages, so that much of the retention is not extra. It matters for a
    full fine-tune of a small model (every weight's gradient and states; measured: S-full rows of
    tests/benchmarks/memory_results_cpu.md); an adapter's tensors are too few to count much."""
    eight_bit = p.optimizer in ("adamw_8bit", "paged_adamw_8bit")
    per_element = 1 + (0 if eight_bit else ADAM_STATES)  # gradient + states, each the tensor's size

    def reused(numel: int, elem_bytes: int) -> int:
        return numel * elem_bytes * per_element if numel * elem_bytes < CPU_HEAP_ALLOCATION_MAX else 0

    if p.method == "full":
        sb = DTYPE_BYTES[p.dtype]
        total = sum(m.count * reused(m.d_in * m.d_out, sb) for m in info.linear_modules)
        vec = info.vector_params // max(info.vector_tensors, 1)
        total += info.vector_tensors * reused(vec, sb)
        total += reused(info.embedding_params, sb)  # one tensor (shared with the head when tied)
        if info.head is not None and not info.tie_word_embeddings:
            total += reused(info.head.d_in * info.head.d_out, sb)
        return total
    return sum(m.count * reused(n, ADAPTER_BYTES) for m in adapted for n in _adapter_tensors(m, p))

