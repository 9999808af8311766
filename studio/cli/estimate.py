"""``studio estimate``: peak training memory of a run, before loading any weight.

Either from a run config (``studio estimate run.yaml``) or from flags (``--model DIR --method qlora
--rank 16 ...``); flags override the file's fields. The verdict is for "this dataset": the config's
training files (or ``--dataset FILE``) are token-counted like the dataset check does, and the
estimate is for the widest batch the trainer will form on them; "worst case" is every row at
max_seq_len. ``--no-dataset`` skips the counting. Runs finished on this machine correct the figure
(see studio.core.memory.calibration). Exit code 0 when the run fits the device, 1 when it does not
(so scripts can branch on it), 2 for unusable input.
"""

from __future__ import annotations

import argparse
from typing import Any

from studio.cli import EXIT_FINDINGS, EXIT_OK
from studio.cli._args import METHOD_CHOICES, config_overrides, method_as_objective, number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("estimate", help="estimate peak training memory for a config or model folder")
    p.add_argument("config", nargs="?", help="run config YAML (optional when --model is given)")
    p.add_argument("--model", help="model folder (config.json is enough)")
    p.add_argument("--method", choices=METHOD_CHOICES,
                   help="lora / qlora / full; dpo / orpo estimate a preference run (chosen and rejected in one "
                        "forward, and for dpo a reference forward), keeping the config's lora or qlora")
    p.add_argument("--rank", type=int, help="LoRA rank r")
    p.add_argument("--targets", help="comma-separated LoRA target modules, e.g. q_proj,v_proj or all-linear")
    p.add_argument("--batch", type=int, help="batch size")
    p.add_argument("--seq", type=int, help="max sequence length")
    p.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, default=None,
                   help="gradient checkpointing on/off")
    p.add_argument("--optimizer", choices=["adamw", "adamw_8bit", "paged_adamw_8bit"])
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--device", choices=["cuda", "cpu"],
                   help="estimate for this device kind (default: this machine's)")
    p.add_argument("--budget-gib", type=number(float, above=0), help="memory budget in GiB (default: this machine's GPU or RAM)")
    p.add_argument("--dataset", action="append", metavar="FILE",
                   help="training file whose token lengths the estimate uses (repeat for several; default: the config's)")
    p.add_argument("--no-dataset", action="store_true", help="ignore any dataset: every row at max_seq_len")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_run)


CONFIG_FLAGS = {
    "--model": "model.path", "--method": "method", "--rank": "lora.r", "--targets": "lora.target_modules",
    "--batch": "training.batch_size", "--seq": "training.max_seq_len", "--grad-ckpt": "training.grad_checkpointing",
    "--optimizer": "training.optimizer", "--dtype": "model.dtype",
}


def _overrides(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    overrides, labels = config_overrides(args, CONFIG_FLAGS)
    method_as_objective(overrides, labels)
    if "lora.target_modules" in overrides:
        overrides["lora.target_modules"] = [t.strip() for t in args.targets.split(",") if t.strip()]
    return overrides, labels


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from studio.cli import print_json
    from studio.core.config import RunConfig, load_config
    from studio.core.configure import apply_choices
    from studio.core.errors import StudioError
    from studio.core.memory import (
        GiB,
        count_lengths,
        estimate,
        machine_calibration,
        suggestions,
        verdict,
    )
    from studio.core.models.device import probe_device
    from studio.core.models.introspect import inspect_model

    if not args.config and not args.model:
        raise StudioError("Give a run config file or --model DIR (see studio estimate --help).")
    cfg = load_config(Path(args.config)) if args.config else RunConfig()
    cfg = apply_choices(cfg, *_overrides(args))  # the same recipes as `studio train` and the Configure pane
    if not cfg.model.path:
        raise StudioError("The config names no model folder; pass --model DIR.")
    info = inspect_model(Path(cfg.model.path), trust_remote_code=cfg.model.trust_remote_code,
                         allow_pickle=cfg.model.allow_pickle)

    device = probe_device()
    kind, name, total = device.kind, device.name, device.memory_bytes
    if kind == "cpu":
        name = f"{name} (system RAM)"
    if args.device and args.device != kind:
        kind, name = args.device, f"{args.device} (not this machine)"
    if args.budget_gib:
        total = int(args.budget_gib * GiB)
    lengths = None
    if not args.no_dataset and (args.dataset or cfg.dataset.train):
        lengths = count_lengths(cfg, files=args.dataset)
    raw = estimate(info, cfg, device_kind=kind, lengths=lengths)
    worst = estimate(info, cfg, device_kind=kind) if lengths is not None else raw
    calib = machine_calibration(kind)
    est, worst = raw.scaled(calib.factor), worst.scaled(calib.factor)
    sugg = suggestions(info, cfg, total, device_kind=kind, lengths=lengths, factor=calib.factor)
    judged = verdict(est.total_bytes, total)
    fits = judged != "red"
    if args.json:
        print_json({
            **est.to_dict(),
            "uncorrected_total_bytes": raw.total_bytes,
            "worst_case_total_bytes": worst.total_bytes,
            "model": info.path,
            "architecture": info.architecture,
            "fits": fits,
            "verdict": judged,
            "calibration": {"runs": calib.runs, "factor": calib.factor, "mean_abs_error_pct": calib.mean_abs_error_pct},
            "device": {"kind": kind, "name": name, "bytes": total},
            "suggestions": [s.to_dict() for s in sugg],
        })
    else:
        print(_table(info, est, kind, name, total, judged, sugg, worst=worst, calib=calib))
    return EXIT_OK if fits else EXIT_FINDINGS


def _table(info, est, kind: str, name: str, budget: int, judged: str, sugg, *, worst, calib) -> str:
    from studio.core.formatting import format_bytes, format_count
    from studio.core.memory import batch_shape, objective_line

    lines = [
        f"{info.architecture} ({format_count(info.total_params)} params), {est.method}, {est.dtype} on {kind}",
        f"trainable {est.trainable_params:,} of {est.total_params:,} ({est.trainable_pct:.3f}%)",
        f"output file  {format_bytes(est.adapter_file_bytes)}",
        "",
        f"peak ({est.peak_phase.replace('_', ' ')}):",
    ]
    width = max(len(k) for k in est.bytes)
    for key, val in est.bytes.items():
        lines.append(f"  {key:<{width}}  {format_bytes(val):>12}")
    lines.append(f"  {'total':<{width}}  {format_bytes(est.total_bytes):>12}")
    phases = ", ".join(f"{k.replace('_', ' ')} {format_bytes(v)}" for k, v in est.phases.items())
    lines.append(f"phases: {phases}")
    if objective_line(est):
        lines.append(objective_line(est))
    lines.append("")
    if est.basis == "dataset":
        lines.append(f"this dataset: {format_bytes(est.total_bytes)} (widest batch {batch_shape(est)})")
    lines.append(f"worst case, every row at max length: {format_bytes(worst.total_bytes)} ({batch_shape(worst)})")
    lines.append(calib.describe())
    share = 100 * est.total_bytes / budget if budget else 0
    words = {"green": "fits", "amber": "fits with little headroom (over 90 %)", "red": "does NOT fit"}
    lines.append(f"{words[judged]}: {share:.0f} % of {format_bytes(budget)} ({name})")
    if sugg:
        lines.append("suggestions:")
        for s in sugg:
            mark = "fits" if s.fits else "not enough"
            lines.append(f"  - {s.text} -> {format_bytes(s.estimate.total_bytes)} ({mark})")
    return "\n".join(lines)
