"""The estimator's physical constants: bytes per parameter, token and vocabulary entry, with sources.

Kept apart so every term module reads the same numbers and a reviewer finds each constant's origin
in one place.
"""

from __future__ import annotations

from typing import Literal

from studio.core.formatting import GiB, KiB, MiB  # noqa: F401  (the units live with their formatting)

DeviceKind = Literal["cuda", "cpu"]

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
# torch AdamW on CPU runs the single-tensor loop (foreach is a CUDA default): for each parameter,
# exp_avg_sq.sqrt() and its division by the bias correction are two parameter-sized temporaries
# alive at once. On a model whose biggest tensor is a 262k-vocabulary embedding (Gemma-3) that is
# 1.3 GB; counting one, as before, left full fine-tuning of such a model 11 % under its measured peak.
CPU_ADAM_TEMPORARIES = 2

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
# CPU: resident set of the training process before the model loads: python + torch + transformers +
# peft + bitsandbytes (the engine imports all of them) and the tokenizer. Measured on the benchmark
# machine (579 MiB after the imports, 624 MiB with the bundled model's tokenizer); the user's RAM
# holds the whole process, so the estimate counts it. The previous 430 MiB was the RSS of a bare
# torch + transformers + peft import, without bitsandbytes and the tokenizer.
CPU_PROCESS_BASELINE_BYTES = 620 * MiB
# The part of that baseline already resident when the engine begins a run in `studio train` (the
# imports, before the tokenizer and model load; measured 508 MiB with the engine's own reading). A process that holds more at that point — the
# desktop app, whose window, plots and loaded dataset share the process with the run — needs the
# difference on top of the baseline; memory_watch.estimate_run adds it.
CPU_IMPORTS_RSS_BYTES = 508 * MiB
# CPU: glibc keeps freed heap chunks (anything under its dynamic mmap threshold, up to 32 MiB) for
# reuse instead of returning them, so the resident set of a training process sits above its live
# tensors by a share of what each forward pass allocates and frees. Calibrated by the benchmark:
# (default-allocator peak RSS - live-tracking peak RSS) / activations a forward pass produces.
CPU_ALLOCATOR_RETENTION = 0.6
# glibc serves an allocation from the heap (where freed chunks are kept and reused) below this size
# and maps it on its own above (returned to the system when freed): the dynamic mmap threshold
# never rises above 32 MiB on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX = 4 MiB * sizeof(long)).
CPU_HEAP_ALLOCATION_MAX = 32 * 2**20

# Preference objectives (memory.objective). TRL's fused log-prob head (trl/kernels/chunked_logprob.py,
# TRL 1.16) projects at most TOKEN_CHUNK_SIZE tokens x _CHUNKED_LOGPROB_CHUNK_SIZE vocabulary entries
# at a time.
TRL_FUSED_HEAD_TOKEN_TILE = 4096
TRL_FUSED_HEAD_VOCAB_TILE = 32768
# Without Triton (CPU) the tile is folded by torch operations. Forward (_forward_tile): the scaled
# logits z, then z - max and its exp alive together (3 fp32 tiles; the bool masks are 1 B each and
# freed before). Backward (_backward_tile): y, z, log p, p, the gradient and the temporaries of
# (is_target - p) x grad (7 fp32 tiles at the widest statement).
TRL_FUSED_HEAD_FWD_FP32_TILES = 3
TRL_FUSED_HEAD_BWD_FP32_TILES = 7
# ORPO's backward builds the gradient of the full (2 x batch rows) logits on several paths before
# autograd sums them: the per-row logsumexp gradients of selective_log_softmax (one full set, then
# stacked: a second), the gather's scatter, and the chosen half's cross-entropy gradient padded back
# through its slice (a fourth). Measured on CPU (S-orpo-pref in tests/benchmarks/memory_results_cpu.md):
# the backward peak sits 4 fp32 logits-sized tensors above the log-softmax's own terms.
ORPO_LOGIT_GRAD_COPIES = 4
# CPU, DPO: the resident set of a DPO run sits above its live tensors by more than a supervised run's
# retention: the reference forward allocates and frees a whole forward's intermediates while the
# policy's saved activations hold the heap beneath them, and glibc keeps part of that. Measured
# (S-dpo-pref rows, three passes of batch 4 and two of batch 8; the checkpointed row, with few saved
# activations, shows little): about a quarter of the saved activations.
DPO_REFERENCE_RETENTION = 0.25

PHASES = ("forward_end", "backward", "optimizer")
BREAKDOWN_KEYS = ("weights", "adapter", "gradients", "optimizer", "activations", "logits", "overhead")

