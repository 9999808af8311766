"""Training-memory estimator: how many bytes a run needs, before any weight is loaded.

Pure arithmetic on a :class:`~studio.core.models.introspect.ModelInfo` (shapes from the meta
device) and a :class:`~studio.core.config.RunConfig`; well under a millisecond, so the Configure pane
recomputes it on every slider move. Every term is a physical count (bytes per parameter, per token,
per vocabulary entry) with the source of its constant beside it.

Phase model. Memory is not the plain sum of the parts, because the parts do not all live at once:

* ``forward_end``  weights + adapter + optimizer states + every saved activation + logits/loss
  (optimizer states exist from the first step on, so every later step carries them);
* ``backward``     weights + adapter + optimizer states + the largest of
  (a) activations + the loss backward (log-softmax output, its gradient, the logits gradient),
  (b) activations + backward workspace (gradient buffers of one layer, the recomputed layer under
  gradient checkpointing), (c) all gradients + workspace (activations drained, end of backward);
* ``optimizer``    weights + adapter + gradients + optimizer states + the optimizer's temporaries.

The peak (``total_bytes``) is the maximum over the phases; ``bytes`` is the breakdown of the peak
phase, so its values add up to ``total_bytes``. ``overhead`` is the fixed cost of the process plus
the phase's transient workspace; ``overhead_parts`` says what the fixed cost is made of: the CUDA
context on a GPU; on CPU the Python + torch + transformers + peft process, memory-mapped weight-file
pages that stay resident, and the heap glibc keeps after freeing activations.

On CUDA the number is what ``torch.cuda.max_memory_allocated`` would report plus the context; the
caching allocator's fragmentation (reserved minus allocated) is not modelled, and paged 8-bit
optimizer states live in managed memory that ``max_memory_allocated`` does not count (they are
counted here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from studio.core.config import RunConfig
from studio.core.models.introspect import LinearModule, ModelInfo, resolve_targets

DeviceKind = Literal["cuda", "cpu"]

KiB = 1024
MiB = 1024**2
GiB = 1024**3

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
FP32 = 4

# PEFT creates adapters in fp32 even on a 16-bit base (LoraConfig autocast_adapter_dtype=True).
ADAPTER_BYTES = FP32
# The adapter file: safetensors header is JSON, roughly this much per tensor (name, dtype, shape, offsets).
SAFETENSORS_HEADER_PER_TENSOR = 128

# bitsandbytes functional.quantize_4bit: two 4-bit codes per byte, one fp32 absmax per 64 values.
NF4_BLOCK = 64
# compress_statistics (double quant): the fp32 absmax become uint8 in blocks of 256, each with an
# fp32 absmax, plus one fp32 offset and a 256-entry fp32 code table per tensor.
NF4_DQ_BLOCK = 256
NF4_DQ_TENSOR_BYTES = 4 + 256 * 4
# Each 4-bit QuantState carries its own 16-entry fp32 code table.
NF4_CODE_BYTES = 16 * 4

# bitsandbytes 8-bit blockwise optimizers: 1 byte per state value, an fp32 absmax per 256 values;
# tensors under min_8bit_size (4096) keep fp32 states.
ADAM8_BLOCK = 256
ADAM8_MIN_SIZE = 4096
ADAM8_QMAP_BYTES = 256 * FP32  # each 8-bit state keeps its own 256-entry fp32 quantisation map
ADAM_STATES = 2  # exp_avg, exp_avg_sq

# Autograd-saved tensors, counted with torch.autograd.graph.saved_tensors_hooks on Llama-style
# layers (see tests/core/test_memory.py, which re-measures them):
# RMSNorm/LayerNorm upcast their input to fp32 and keep it for the backward of the variance.
NORM_FP32_BYTES = FP32
# SDPA/flash attention keeps a logsumexp per head and query position in fp32.
SDPA_LSE_BYTES = FP32
# Eager attention keeps the fp32 softmax, its cast to the compute dtype, and the (p=0) dropout's
# bool mask, per head per query per key.
EAGER_SOFTMAX_BYTES = FP32
EAGER_DROPOUT_MASK_BYTES = 1
# Dropout on the LoRA input keeps its mask: a bool on CUDA (native_dropout), a tensor of the input
# dtype on CPU (bernoulli noise).
CUDA_DROPOUT_MASK_BYTES = 1

# transformers' ForCausalLMLoss upcasts logits to fp32 and cross_entropy keeps the fp32 log-softmax:
# forward holds logits + fp32 copy + log-softmax; backward holds log-softmax + its gradient +
# the fp32 logits gradient (3 x 4 B per token per vocabulary entry).
LOSS_FP32_COPIES_FWD = 1
LOSS_BACKWARD_BYTES = 3 * FP32

# Backward workspace of one decoder layer: the incoming gradient of the residual stream and the one
# being produced (hidden wide), plus the gradients of the widest intermediate pair (MLP width).
BWD_RESIDUAL_GRADS = 2
BWD_MLP_GRADS = 2

# Fixed cost of the process. CUDA: context + kernels with lazy module loading (design notes,
# 0.3–0.5 GB); not visible to torch.cuda.max_memory_allocated, so the benchmark adds it there too.
CUDA_CONTEXT_BYTES = 450 * MiB
# CPU: resident set of python + torch + transformers + peft (387 MiB right after the imports on
# the benchmark machine) plus what the first step adds (oneDNN/OpenMP pools, loader leftovers);
# calibrated by tests/benchmarks/bench_memory.py (memory_results_cpu.md) against runs whose RSS
# follows live tensors (MALLOC_MMAP_THRESHOLD_=65536).
CPU_PROCESS_BASELINE_BYTES = 430 * MiB
# CPU: glibc keeps freed heap chunks (anything under its dynamic mmap threshold, up to 32 MiB) for
# reuse instead of returning them, so the resident set of a training process sits above its live
# tensors by a share of what each forward pass allocates and frees. Calibrated by the benchmark:
# (default-allocator peak RSS - live-tracking peak RSS) / activations a forward pass produces.
CPU_ALLOCATOR_RETENTION = 0.6

PHASES = ("forward_end", "backward", "optimizer")
BREAKDOWN_KEYS = ("weights", "adapter", "gradients", "optimizer", "activations", "logits", "overhead")


@dataclass(frozen=True)
class Estimate:
    device_kind: str
    method: str
    dtype: str
    trainable_params: int
    total_params: int  # as PEFT counts it: base parameters + adapter parameters
    trainable_pct: float
    adapter_file_bytes: int  # adapter_model.safetensors (full fine-tuning: the whole model file)
    bytes: dict[str, int]  # breakdown of the peak phase; sums to total_bytes
    total_bytes: int
    peak_phase: str
    phases: dict[str, int]  # total of each phase
    phase_breakdown: dict[str, dict[str, int]] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    overhead_parts: dict[str, int] = field(default_factory=dict)  # what ``overhead`` is made of, before workspaces

    def fits(self, budget_bytes: int) -> bool:
        return self.total_bytes <= budget_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_kind": self.device_kind,
            "method": self.method,
            "dtype": self.dtype,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "trainable_pct": self.trainable_pct,
            "adapter_file_bytes": self.adapter_file_bytes,
            "bytes": dict(self.bytes),
            "total_bytes": self.total_bytes,
            "peak_phase": self.peak_phase,
            "phases": dict(self.phases),
            "targets": list(self.targets),
            "overhead_parts": dict(self.overhead_parts),
        }


@dataclass(frozen=True)
class Suggestion:
    kind: str  # "batch_size" | "max_seq_len" | "qlora" | "grad_checkpointing" | "qlora+grad_checkpointing" | "optimizer"
    text: str
    overrides: dict[str, Any]  # dotted RunConfig keys, for studio.core.config.apply_overrides
    estimate: Estimate
    fits: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "overrides": dict(self.overrides), "fits": self.fits,
                "total_bytes": self.estimate.total_bytes}


@dataclass(frozen=True)
class _Plan:
    """The handful of settings the arithmetic needs; cheap to vary for the suggestion searches."""

    device: str
    method: str
    dtype: str
    batch: int
    seq: int
    grad_ckpt: bool
    optimizer: str
    targets: tuple[str, ...]
    r: int
    dropout: float
    dora: bool
    double_quant: bool
    compute_dtype: str

    @property
    def autocast(self) -> bool:
        # The engine turns on Trainer bf16/fp16 (autocast) on CUDA for adapter methods on a 16-bit base.
        return self.device == "cuda" and self.method != "full" and self.dtype != "float32"


def resolve_dtype(cfg_dtype: str, device_kind: str) -> str:
    """The dtype weights are trained in: auto means bf16 on CUDA, fp32 on CPU (as the engine picks)."""
    if cfg_dtype != "auto":
        return cfg_dtype
    return "bfloat16" if device_kind == "cuda" else "float32"


def _plan(info: ModelInfo, cfg: RunConfig, device_kind: str) -> _Plan:
    targets: tuple[str, ...] = ()
    if cfg.method != "full":
        targets = tuple(resolve_targets(info, cfg.lora.target_modules))
    return _Plan(
        device=device_kind,
        method=cfg.method,
        dtype=resolve_dtype(cfg.model.dtype, device_kind),
        batch=cfg.training.batch_size,
        seq=cfg.training.max_seq_len,
        grad_ckpt=cfg.training.grad_checkpointing,
        optimizer=cfg.training.optimizer,
        targets=targets,
        r=cfg.lora.r,
        dropout=cfg.lora.dropout,
        dora=cfg.lora.use_dora,
        double_quant=cfg.quant.double_quant,
        compute_dtype=cfg.quant.compute_dtype,
    )


# ---------------------------------------------------------------------------------------------
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


def _adapter_tensors(m: LinearModule, p: _Plan) -> list[int]:
    sizes = [p.r * m.d_in, m.d_out * p.r]
    if p.dora:
        sizes.append(m.d_out)
    return sizes


def _weights_bytes(info: ModelInfo, p: _Plan) -> int:
    wb = DTYPE_BYTES[p.dtype]
    if p.method != "qlora":
        return info.total_params * wb
    quant = sum(m.count * nf4_bytes(m.d_in * m.d_out, double_quant=p.double_quant) for m in info.linear_modules)
    # prepare_model_for_kbit_training upcasts every non-quantised parameter (embeddings, head,
    # norms, biases) to fp32.
    return quant + info.other_params * FP32


def _optimizer_bytes(info: ModelInfo, p: _Plan, adapted: list[LinearModule]) -> int:
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


def _act_dtypes(p: _Plan) -> _ActDtypes:
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


def _layer_activation_bytes_per_token(info: ModelInfo, p: _Plan, adapted: list[LinearModule], d: _ActDtypes) -> float:
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
        out += info.num_heads * p.seq * per_score
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


def _activations(info: ModelInfo, p: _Plan, adapted: list[LinearModule]) -> tuple[int, int, _ActDtypes]:
    """(saved activations, backward workspace) in bytes for the whole batch."""
    d = _act_dtypes(p)
    tokens = p.batch * p.seq
    h = info.hidden_size
    layer = _layer_activation_bytes_per_token(info, p, adapted, d)
    # final norm (+ the head's input when the head trains)
    tail = NORM_FP32_BYTES * h + (2 * d.res * h if p.method == "full" else 0)
    if info.attn_implementation == "eager":
        tail += d.attn * p.seq  # the additive causal mask (batch x seq x seq)
    if p.grad_ckpt:
        saved = info.num_layers * d.res * h + tail  # each checkpointed layer keeps only its input
        rope = 0
    else:
        saved = info.num_layers * layer + tail
        rope = 2 * p.seq * info.head_dim * d.attn  # rotary cos/sin, shared by the batch and the layers
    width = 2 * info.intermediate_size if info.mlp_gated else info.intermediate_size
    workspace = BWD_RESIDUAL_GRADS * d.res * h + BWD_MLP_GRADS * d.mlp * width / 2
    if p.grad_ckpt:
        workspace += layer  # one layer recomputed during backward
    return int(saved * tokens + rope), int(workspace * tokens), d


def _overhead_parts(info: ModelInfo, p: _Plan, adapted: list[LinearModule]) -> dict[str, int]:
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
    parts["allocator_retention"] = int(CPU_ALLOCATOR_RETENTION * produced)
    return parts


# ---------------------------------------------------------------------------------------------
# The estimate


def _estimate_plan(info: ModelInfo, p: _Plan) -> Estimate:
    adapted = info.modules_named(p.targets) if p.method != "full" else []
    wb = DTYPE_BYTES[p.dtype]
    if p.method == "full":
        adapter_params = 0
        trainable = info.total_params
        grad_bytes_per = wb
    else:
        adapter_params = sum(lora_params(m, p.r, p.dora) for m in adapted)
        trainable = adapter_params
        grad_bytes_per = ADAPTER_BYTES
    total_params = info.total_params + adapter_params

    weights = _weights_bytes(info, p)
    adapter = adapter_params * ADAPTER_BYTES
    gradients = trainable * grad_bytes_per
    optimizer = _optimizer_bytes(info, p, adapted)
    activations, workspace, d = _activations(info, p, adapted)

    tv = p.batch * p.seq * info.vocab_size
    logits_fwd = tv * (d.logits + (LOSS_FP32_COPIES_FWD * FP32 if d.logits < FP32 else 0) + FP32)
    logits_bwd = tv * LOSS_BACKWARD_BYTES
    # Full fine-tuning: the head's weight gradient appears while the loss gradient is still alive.
    head_grad = 0
    if p.method == "full" and info.head is not None:
        head_grad = info.head.d_in * info.head.d_out * wb

    overhead_parts = _overhead_parts(info, p, adapted)
    overhead = sum(overhead_parts.values())
    if p.method == "qlora" and info.linear_modules:
        # bitsandbytes dequantises one weight to the compute dtype for each matmul
        biggest = max(m.d_in * m.d_out for m in info.linear_modules)
        workspace += biggest * DTYPE_BYTES[p.compute_dtype]
    if p.dora and adapted:
        # DoRA's weight norm materialises W + scale * B @ A for one layer at a time
        workspace += max(m.d_in * m.d_out for m in adapted) * max(wb, FP32)
    opt_ws = 0  # bitsandbytes 8-bit optimizers update in place
    if p.optimizer == "adamw":
        if p.device == "cuda":
            opt_ws = trainable * grad_bytes_per  # foreach AdamW: one state-sized temporary (sqrt of exp_avg_sq)
        elif p.method == "full":
            biggest = max([m.d_in * m.d_out for m in info.linear_modules] + [info.embedding_params])
            opt_ws = biggest * wb  # the CPU loop updates one tensor at a time
        else:
            opt_ws = max((n for m in adapted for n in _adapter_tensors(m, p)), default=0) * ADAPTER_BYTES

    zero = dict.fromkeys(BREAKDOWN_KEYS, 0)
    base = {**zero, "weights": weights, "adapter": adapter, "optimizer": optimizer, "overhead": overhead}
    fwd = {**base, "activations": activations, "logits": logits_fwd}
    bwd_loss = {**base, "activations": activations, "logits": logits_bwd, "gradients": head_grad}
    bwd_layers = {**base, "activations": activations, "gradients": head_grad, "overhead": overhead + workspace}
    bwd_end = {**base, "gradients": gradients, "overhead": overhead + workspace}
    bwd = max((bwd_loss, bwd_layers, bwd_end), key=lambda b: sum(b.values()))
    opt = {**base, "gradients": gradients, "overhead": overhead + opt_ws}
    breakdown = {"forward_end": fwd, "backward": bwd, "optimizer": opt}
    phases = {k: int(sum(v.values())) for k, v in breakdown.items()}
    peak_phase = max(PHASES, key=lambda k: phases[k])

    if p.method == "full":
        file_bytes = info.total_params * wb
    else:
        n_tensors = sum(m.count * (3 if p.dora else 2) for m in adapted)
        file_bytes = adapter_params * ADAPTER_BYTES + n_tensors * SAFETENSORS_HEADER_PER_TENSOR
    return Estimate(
        device_kind=p.device,
        method=p.method,
        dtype=p.dtype,
        trainable_params=int(trainable),
        total_params=int(total_params),
        trainable_pct=100.0 * trainable / total_params if total_params else 0.0,
        adapter_file_bytes=int(file_bytes),
        bytes={k: int(v) for k, v in breakdown[peak_phase].items()},
        total_bytes=phases[peak_phase],
        peak_phase=peak_phase,
        phases=phases,
        phase_breakdown={k: {kk: int(vv) for kk, vv in v.items()} for k, v in breakdown.items()},
        targets=p.targets,
        overhead_parts=overhead_parts,
    )


def estimate(info: ModelInfo, cfg: RunConfig, *, device_kind: DeviceKind = "cuda") -> Estimate:
    """Peak training memory of ``cfg`` on ``info`` (see the module docstring for the phase model).

    Raises StudioError when the LoRA targets name modules the model does not have.
    """
    if device_kind not in ("cuda", "cpu"):
        raise ValueError(f"device_kind must be 'cuda' or 'cpu', not {device_kind!r}")
    return _estimate_plan(info, _plan(info, cfg, device_kind))


# ---------------------------------------------------------------------------------------------
# Suggestions


def _largest(lo: int, hi: int, fits) -> int | None:
    """Largest n in [lo, hi] with fits(n), assuming memory grows with n; None if even lo fails."""
    if not fits(lo):
        return None
    if fits(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def suggestions(info: ModelInfo, cfg: RunConfig, budget_bytes: int, *, device_kind: DeviceKind = "cuda") -> list[Suggestion]:
    """Ways to fit ``budget_bytes`` (or to use it better), each with the estimate it leads to.

    Fitting suggestions come first. Changes that help but do not fit on their own are still
    listed, so the user sees how far each lever goes.
    """
    p = _plan(info, cfg, device_kind)
    current = _estimate_plan(info, p)
    out: list[Suggestion] = []

    def add(kind: str, text: str, overrides: dict[str, Any], plan: _Plan) -> None:
        est = _estimate_plan(info, plan)
        if est.total_bytes >= current.total_bytes and kind not in ("batch_size", "max_seq_len"):
            return  # not an improvement
        out.append(Suggestion(kind, text, overrides, est, est.fits(budget_bytes)))

    def fits_plan(plan: _Plan) -> bool:
        return _estimate_plan(info, plan).total_bytes <= budget_bytes

    batch_cap = 4096  # TrainingSection.batch_size's upper bound
    max_batch = _largest(1, batch_cap, lambda b: fits_plan(replace(p, batch=b)))
    if max_batch is not None and max_batch != p.batch:
        text = (f"Batch size up to {max_batch} fits." if max_batch < batch_cap
                else f"Any batch size up to the maximum ({batch_cap}) fits.")
        add("batch_size", text, {"training.batch_size": max_batch}, replace(p, batch=max_batch))
    seq_cap = max(info.context_length or 0, p.seq, 8)
    max_seq = _largest(8, seq_cap, lambda s: fits_plan(replace(p, seq=s)))
    if max_seq is not None and max_seq != p.seq:
        text = (f"Sequence length up to {max_seq} fits at batch {p.batch}." if max_seq < seq_cap
                else f"The model's full context ({seq_cap} tokens) fits at batch {p.batch}.")
        add("max_seq_len", text, {"training.max_seq_len": max_seq}, replace(p, seq=max_seq))
    if not p.grad_ckpt:
        add("grad_checkpointing", "Turn on gradient checkpointing: activations are recomputed instead of kept.",
            {"training.grad_checkpointing": True}, replace(p, grad_ckpt=True))
    if p.method != "qlora":
        targets = p.targets or tuple(info.target_names)
        q = replace(p, method="qlora", targets=targets)
        over: dict[str, Any] = {"method": "qlora"}
        if p.method == "full":
            over["lora.target_modules"] = ["all-linear"]
        add("qlora", "Switch to QLoRA: the base weights are stored in 4 bit.", over, q)
        if not p.grad_ckpt:
            add("qlora+grad_checkpointing", "Switch to QLoRA and turn on gradient checkpointing.",
                {**over, "training.grad_checkpointing": True}, replace(q, grad_ckpt=True))
    if p.optimizer == "adamw" and p.method == "full":
        add("optimizer", "Use 8-bit AdamW: optimizer states take 2 bytes per parameter instead of 4-8.",
            {"training.optimizer": "adamw_8bit"}, replace(p, optimizer="adamw_8bit"))
    out.sort(key=lambda s: (not s.fits, s.estimate.total_bytes if not s.fits else 0))
    return out


# ---------------------------------------------------------------------------------------------
# The machine


def device_memory() -> tuple[str, str, int]:
    """(kind, name, bytes): the first CUDA GPU's total memory, else this machine's RAM."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return "cuda", str(props.name), int(props.total_memory)
    import platform

    import psutil

    name = platform.processor() or platform.machine() or "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            name = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), name)
    except OSError:
        pass
    return "cpu", f"{name} (system RAM)", int(psutil.virtual_memory().total)


def format_bytes(n: float) -> str:
    """Human size in binary units, as the GUI and CLI show it."""
    n = float(n)
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"
