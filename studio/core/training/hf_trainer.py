"""The Trainer the engine runs: transformers' Trainer plus two guarantees it lacks by default.

* A non-finite gradient norm never reaches the optimizer. The stock Trainer logs an ``inf`` norm and
  steps anyway: clipping scales the gradients by ``max_norm / inf = 0`` (an all-zero update, so a run
  "completes" with an untrained adapter) or by ``NaN`` (NaN weights). Here the gradients are dropped,
  so that step changes nothing, and the engine is told which step it was so it can fail the run while
  the weights are still those of the last good step.
* The shuffled order of each epoch depends only on the data seed and the epoch number. The stock
  length-grouped sampler draws from the global RNG, whose state when epoch 2 starts depends on all
  that epoch 1 drew (dropout masks, the previous shuffle). A resume draws the order of its epoch
  right after seeding, before the checkpoint's RNG state is restored, so a run resumed anywhere past
  the first epoch trained on other batches than the run it continues. With this sampler and the RNG
  state each checkpoint keeps (dropout masks), the steps a resume replays are bit-identical to the
  uninterrupted run's on CPU. On CUDA some backward kernels add in a varying order unless
  ``torch.use_deterministic_algorithms`` is on; without it, replayed losses agree only to float
  rounding, the same spread as between two uninterrupted runs on that GPU.

Imported by the engine only after the ML stack is loaded (``heavy_imports.ensure``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

BadNormHandler = Callable[[int, float], None]


class EpochSeededLengthSampler(LengthGroupedSampler):
    """Length-grouped shuffle seeded by ``(seed, epoch)``: the same epoch always gives the same order."""

    def __init__(self, batch_size: int, *, seed: int, dataset, model_input_name: str | None = None) -> None:
        super().__init__(batch_size, dataset=dataset, model_input_name=model_input_name)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer (through accelerate's data loader) before each epoch, resumed ones too."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class StudioTrainer(Trainer):
    """``Trainer`` with the guard and the sampler above; ``on_bad_grad_norm=None`` turns the guard off
    (fp16 autocast, where the gradient scaler already skips overflowing steps by design)."""

    def __init__(self, *args, on_bad_grad_norm: BadNormHandler | None = None, **kwargs) -> None:
        self._on_bad_grad_norm = on_bad_grad_norm
        super().__init__(*args, **kwargs)

    def _get_grad_norm(self, model, grad_norm=None):
        # The pre-clip norm over every rank's gradients, so all ranks take the same decision.
        norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if self._on_bad_grad_norm is not None and norm is not None:
            value = float(norm)
            if not math.isfinite(value):
                model.zero_grad(set_to_none=True)  # the optimizer skips parameters without a gradient
                self._on_bad_grad_norm(self.state.global_step + 1, value)
        return norm

    def _get_train_sampler(self, train_dataset=None):
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or dataset is None or not hasattr(dataset, "__len__"):
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        model_input_name = self.processing_class.model_input_names[0] if self.processing_class is not None else None
        return EpochSeededLengthSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps,
            seed=seed, dataset=dataset, model_input_name=model_input_name,
        )


def halt_without_saving(tcontrol) -> None:
    """End training at this step with no eval and no checkpoint: the last checkpoint stays the last good one."""
    tcontrol.should_training_stop = True
    tcontrol.should_save = False
    tcontrol.should_evaluate = False
