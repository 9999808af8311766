"""Import torch / transformers / peft once, under one process-wide lock.

transformers resolves its public names lazily on first attribute access; two worker threads doing
that at the same moment (the dataset pane loading a tokenizer while the configure pane reads a
model config) can see a half-initialised module and fail with "cannot import name 'AutoConfig'".
Every core entry point that needs the stack calls ``ensure`` first, so the first resolution of
each group happens in one thread at a time; later ``from transformers import …`` are plain
attribute reads.
"""

from __future__ import annotations

import importlib
import threading

_LOCK = threading.RLock()
_DONE: set[str] = set()

GROUPS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    # Tokenizers only: no modeling code (a tokenizer-only process starts seconds sooner without it).
    "tokenizer": (
        ("transformers", ("AutoTokenizer",)),
    ),
    "transformers": (
        ("torch", ()),
        ("transformers", ("AutoConfig", "AutoTokenizer", "AutoModelForCausalLM", "PreTrainedModel",
                          "StoppingCriteria", "StoppingCriteriaList")),
    ),
    "training": (
        ("transformers", ("Trainer", "TrainingArguments", "TrainerCallback", "PrinterCallback",
                          "EarlyStoppingCallback", "set_seed")),
    ),
    "peft": (
        ("peft", ("PeftModel", "LoraConfig", "get_peft_model", "prepare_model_for_kbit_training")),
    ),
}


def ensure(*groups: str) -> None:
    """Import the named groups (see ``GROUPS``; "transformers" always); cheap after the first call."""
    _import(("transformers", *groups))


def ensure_tokenizer() -> None:
    """Only what loading a tokenizer needs."""
    _import(("tokenizer",))


def _import(groups: tuple[str, ...]) -> None:
    with _LOCK:
        for group in groups:
            if group in _DONE:
                continue
            for module_name, names in GROUPS[group]:
                module = importlib.import_module(module_name)
                for name in names:
                    getattr(module, name)
            _DONE.add(group)
