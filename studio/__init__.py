"""Fine-Tuning Studio: check a dataset, estimate memory, train LoRA/QLoRA, export proven models."""

__version__ = "0.1.0"
