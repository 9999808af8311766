"""Training: the engine (TRL/transformers + peft), its events, and the on-disk run journal."""
