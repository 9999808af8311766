"""A finished run's Library entry: the adapter (or full model) with its lineage — base identity, dataset
fingerprint, config, metrics (including the before/after report) and the parent adapter a preference run
started from. Kept apart from the engine, which only decides when a run is finished."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from studio.core.config import RunConfig
from studio.core.datasets.fingerprint import dataset_fingerprint
from studio.core.training import runs
from studio.core.training.events import Event, Log


def register(cfg: RunConfig, run_dir: Path, adapter_dir: Path, state: dict, step: int,
             send: Callable[[Event], None]) -> str:
    """Put the finished adapter (or full model) in the library with its lineage; a library problem never
    loses the run."""
    from studio.core.library.full_model import register_full_model
    from studio.core.library.registry import AdapterMeta, register_adapter

    metrics = {"train_loss": state["loss"], "steps": step, "peak_memory_bytes": state["peak"]}
    if state.get("eval_step", -1) > 0:  # step 0 is the base model's baseline, not this adapter's loss
        metrics.update(eval_loss=state["eval"], eval_step=state["eval_step"])
        metrics.update({f"eval_reward_{k}": v for k, v in (state.get("rewards") or {}).items()})
    else:
        metrics["eval_note"] = no_eval_reason(state, step)
    metrics.update(state.get("eos") or {})
    if state.get("before_after"):
        metrics["before_after"] = state["before_after"]
    meta = AdapterMeta(
        base_model=str(Path(cfg.model.path).resolve()),
        dataset_fingerprint=dataset_fingerprint(cfg.dataset.train, cfg.dataset.eval),
        config=cfg.model_dump(mode="json"), metrics={k: v for k, v in metrics.items() if v is not None},
        run_dir=str(run_dir), method=cfg.method, base_model_hash=state.get("base_identity", ""),
        objective=cfg.objective, parent_id=state.get("parent_id", ""),
    )
    try:
        add = register_full_model if cfg.method == "full" else register_adapter
        entry = add(adapter_dir, meta, name=runs.run_name(cfg.name, list(cfg.dataset.train), cfg.model.path))
    except Exception as err:  # the result is safe in the run folder; say so instead of failing the run
        what = "Model" if cfg.method == "full" else "Adapter"
        send(Log(level="warning", message=f"{what} saved in {adapter_dir} but not added to the library: {err}"))
        return ""
    send(Log(level="info", message=f"Added to the library as '{entry.name}'"))
    return entry.id


def no_eval_reason(state: dict, step: int) -> str:
    """Why an entry has no eval loss, in the words the Library shows instead of a bare dash."""
    if not state.get("has_eval"):
        return "No eval loss: the run had no eval set (add one on the Dataset pane)."
    every = int(state.get("eval_every") or 0)
    when = f"every {every} steps" if every else "only at the end"
    return f"No eval loss yet: the run stopped at step {step}, before its first evaluation ({when})."
