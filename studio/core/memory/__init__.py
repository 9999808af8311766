"""Training-memory estimator: how many bytes a run needs, before any weight is loaded.

Modules: ``constants`` (bytes per parameter/token/vocabulary entry, with sources), ``plan`` (the
settings the arithmetic needs), ``dataset_lengths`` (the widest batch a dataset gives), ``terms``
(weights, optimizer, activations, fixed costs), ``objective`` (what DPO / ORPO add: both answers in
one batch, TRL's log-prob head, DPO's reference forward), ``estimator`` (phases and peak), ``suggestions``,
``verdict`` (green/amber/red), ``calibration`` (what past runs on this machine say), ``device``.

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

from studio.core.memory.calibration import Calibration, calibrate, machine_calibration
from studio.core.memory.constants import BREAKDOWN_KEYS, DTYPE_BYTES, PHASES, DeviceKind, GiB, KiB, MiB
from studio.core.memory.dataset_lengths import DatasetLengths, count_lengths, widest_batch
from studio.core.memory.estimator import Estimate, estimate
from studio.core.memory.explain import batch_shape, objective_line, versus_full
from studio.core.memory.suggestions import Suggestion, suggestions
from studio.core.memory.terms import adam8_bytes, lora_params, nf4_bytes
from studio.core.memory.verdict import GREEN_SHARE, Verdict, green_limit, verdict

__all__ = [
    "BREAKDOWN_KEYS", "DTYPE_BYTES", "GREEN_SHARE", "PHASES", "Calibration", "DatasetLengths", "DeviceKind",
    "Estimate", "GiB", "KiB", "MiB", "Suggestion", "Verdict", "adam8_bytes", "batch_shape", "calibrate", "count_lengths",
    "estimate", "green_limit", "lora_params", "machine_calibration",
    "nf4_bytes", "objective_line", "suggestions", "verdict", "versus_full", "widest_batch",
]
