"""Preference training (DPO, ORPO) on the engine: TRL's trainers, fed the studio's own rendering.

What differs from a supervised run lives here; the engine keeps the loop, the journal, pause/stop,
checkpoints, early stopping and the Library, so both objectives behave the same around the loss.

* The rows are rendered by ``pair_data`` (the studio's chat template, masking and truncation), so the
  trainers take token ids as given: DPO's own tokenizing step and ORPO's ``tokenize_row`` are bypassed.
* The adapter is made by TRL from ``peft_config`` on the plain base. DPO then computes the reference
  log-probabilities with the adapter switched off (TRL's ``use_adapter(model, None)``): the reference is
  the base itself, and no second copy of the model is loaded (``ref_model`` stays None; the tests
  check it). A run that continues an adapter (``preference.start_from``, usually the SFT adapter) is
  handed to TRL already wrapped; TRL then keeps a frozen copy of that adapter as the reference — the
  SFT policy, as DPO intends — which costs one adapter's weights, not a model's.
* ORPO needs no reference at all: its loss is the chosen answer's own loss plus an odds-ratio term.
* TRL disables dropout by default for both (the policy and the reference must agree at step 0); kept.

Imported by the engine only after the ML stack is loaded (``heavy_imports.ensure``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from studio.core.config import RunConfig
from studio.core.errors import StudioError
from studio.core.training.hf_trainer import BadNormHandler, StudioTrainer
from studio.core.training.pair_data import PairFeatures

with warnings.catch_warnings():  # TRL announces its experimental trainers on import
    warnings.simplefilter("ignore")
    from trl import DPOConfig, DPOTrainer
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    from trl.experimental.utils import DPODataCollatorWithPadding
    from trl.trainer.dpo_trainer import DataCollatorForPreference


class StudioDPOTrainer(StudioTrainer, DPOTrainer):
    """DPO with the studio's gradient guard, on rows ``pair_data`` already rendered."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


class StudioORPOTrainer(StudioTrainer, ORPOTrainer):
    """ORPO with the studio's gradient guard; each row's columns come from ``pair_data``'s ids."""

    def tokenize_row(self, feature, model=None) -> dict:
        prompt, out = feature["prompt_ids"], {}
        out["prompt_input_ids"], out["prompt_attention_mask"] = prompt, [1] * len(prompt)
        for side in ("chosen", "rejected"):
            ids = prompt + feature[f"{side}_ids"]
            out[f"{side}_input_ids"], out[f"{side}_attention_mask"] = ids, [1] * len(ids)
            out[f"{side}_labels"] = [-100] * len(prompt) + feature[f"{side}_ids"]
        return out


class CountingCollator:
    """Wraps TRL's pair collator and counts the real tokens it batched (both sides), for tokens/s."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.tokens_seen = 0

    def __call__(self, batch: list[dict[str, Any]]):
        self.tokens_seen += sum(2 * len(f["prompt_ids"]) + len(f["chosen_ids"]) + len(f["rejected_ids"])
                                for f in batch)
        return self.inner(batch)


def start_adapter(cfg: RunConfig, model):
    """The base wrapped in the adapter ``preference.start_from`` names (a Library entry or a folder),
    trainable; None when the run trains a new adapter."""
    ref = cfg.preference.start_from
    if not ref:
        return None, ""
    from peft import PeftModel

    from studio.core.library.adapter_files import ADAPTER_CONFIG
    from studio.core.library.registry import get_entry

    folder, parent_id = Path(ref).expanduser(), ""
    if not (folder / ADAPTER_CONFIG).is_file():
        try:
            entry = get_entry(ref)
        except StudioError:
            raise StudioError(f"preference.start_from: '{ref}' is neither an adapter folder nor a Library entry. "
                              "`studio library list` shows the Library.") from None
        if entry.is_full_model:
            raise StudioError(f"preference.start_from: '{entry.name}' is a full model, not an adapter; "
                              "pick it as the base model instead.")
        folder, parent_id = entry.adapter_dir, entry.id
    return PeftModel.from_pretrained(model, str(folder), is_trainable=True), parent_id


def build_trainer(cfg: RunConfig, model, tokenizer, feats: PairFeatures, arguments: dict, callbacks: list,
                  peft_config, on_bad_grad_norm: BadNormHandler | None):
    """The TRL trainer for ``cfg.objective`` with the engine's arguments and callbacks.

    ``model`` is the plain base (then ``peft_config`` makes the adapter) or a base already wrapped in
    the adapter a run continues (``peft_config`` None)."""
    from datasets import Dataset

    p = cfg.preference
    train = Dataset.from_list(feats.train)
    evals = Dataset.from_list(feats.eval) if feats.eval else None
    max_len = cfg.training.max_seq_len
    if cfg.objective == "dpo":
        args = DPOConfig(**arguments, beta=p.beta, loss_type=[p.loss_type], max_length=max_len)
        collator = CountingCollator(DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id, max_length=max_len))
        cls = StudioDPOTrainer
    else:
        args = ORPOConfig(**arguments, beta=p.beta, max_length=max_len)
        collator = CountingCollator(DPODataCollatorWithPadding(pad_token_id=tokenizer.pad_token_id))
        cls = StudioORPOTrainer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ORPO's experimental notice, TRL's model-card tags
        trainer = cls(model=model, args=args, data_collator=collator, train_dataset=train, eval_dataset=evals,
                      processing_class=tokenizer, callbacks=callbacks, peft_config=peft_config,
                      on_bad_grad_norm=on_bad_grad_norm)
    return trainer, collator
