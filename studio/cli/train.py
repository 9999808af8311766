"""``studio train``: the same engine as the Train pane, headless (also under ``accelerate launch``)."""

from __future__ import annotations

import argparse
import sys
import time

from studio.cli._args import METHOD_CHOICES, PREFERENCE_METHODS
from studio.core.datasets.templates import choices_text
from studio.core.formatting import format_bytes_in, format_duration, rewards_text, run_method_label


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune from a config file and/or flags; writes a run folder")
    p.add_argument("config", nargs="?", help="run config YAML (flags below override its fields)")
    p.add_argument("--model", help="base model folder (default: the bundled model)")
    p.add_argument("--dataset", action="append", help="training file (repeat for several)")
    p.add_argument("--eval", action="append", help="separate eval file (repeat for several)")
    p.add_argument("--method", choices=METHOD_CHOICES,
                   help="what trains; the learning rate and rank you did not set take this method's recipe. "
                        "dpo / orpo train an adapter on preference pairs (prompt/chosen/rejected): they set "
                        "the objective and keep the config's lora or qlora")
    p.add_argument("--beta", type=float, help="dpo: how close the adapter stays to the base; orpo: weight of the "
                                              "odds-ratio term (preference.beta, default 0.1)")
    p.add_argument("--start-from", metavar="ADAPTER",
                   help="dpo / orpo: continue this Library adapter (name or id) or adapter folder, e.g. the SFT one")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--epochs", type=float)
    p.add_argument("--batch", type=int)
    p.add_argument("--seq", type=int, help="max sequence length")
    p.add_argument("--lr", type=float)
    p.add_argument("--rank", type=int, help="LoRA rank r; alpha follows at 2 x r unless the config sets alpha")
    p.add_argument("--template", metavar="NAME",
                   help="chat format to train in, for a model without its own template (a base model): "
                        f"{choices_text()}; sets model.chat_template")
    p.add_argument("--out", help="run folder to write (default: a new folder in the runs store)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted or stopped run from its last checkpoint")
    p.add_argument("--json", action="store_true", help="print one JSON event per line instead of a progress bar")
    p.set_defaults(func=_run)


# Flags that set run-config fields; the config's rules check their values and errors name the flag.
CONFIG_FLAGS = {
    "--model": "model.path", "--dataset": "dataset.train", "--eval": "dataset.eval", "--method": "method",
    "--max-steps": "training.max_steps", "--epochs": "training.epochs", "--batch": "training.batch_size",
    "--seq": "training.max_seq_len", "--lr": "training.lr", "--rank": "lora.r", "--template": "model.chat_template",
    "--beta": "preference.beta", "--start-from": "preference.start_from",
}

def _build_config(args: argparse.Namespace):
    from pathlib import Path

    from studio.cli._args import config_overrides, method_as_objective
    from studio.core.config import RunConfig, apply_overrides, load_config
    from studio.core.configure import apply_choices

    if args.resume:
        return load_config(Path(args.resume) / "config.yaml")
    cfg = load_config(Path(args.config)) if args.config else RunConfig()
    # The Configure pane's rules: --method brings its recipe to the knobs neither the file nor a
    # flag set, and alpha follows --rank unless the file set alpha on its own.
    overrides, labels = config_overrides(args, CONFIG_FLAGS)
    method_as_objective(overrides, labels)  # dpo / orpo name the objective; lora / qlora stays the config's
    cfg = apply_choices(cfg, overrides, labels)
    if not cfg.model.path:
        from studio.core.models.store import ensure_default_model

        cfg = apply_overrides(cfg, {"model.path": str(ensure_default_model(_progress_line))})
    if not cfg.dataset.train:
        from studio.core.paths import demo_dataset, demo_pref_dataset

        demo = demo_pref_dataset() if cfg.objective in PREFERENCE_METHODS else demo_dataset()
        cfg = apply_overrides(cfg, {"dataset.train": [str(demo)]})
    return cfg


def _progress_line(frac: float, msg: str) -> None:
    print(f"[{frac * 100:3.0f}%] {msg}", file=sys.stderr)


class ProgressPrinter:
    """One refreshing progress line on a terminal; plain lines when piped."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.started = time.time()
        self.phase_estimate: dict[str, int] = {}

    def __call__(self, ev) -> None:
        kind = ev.kind
        if kind == "step":
            frac = ev.step / max(1, ev.total_steps)
            bar = "#" * int(frac * 30)
            elapsed = time.time() - self.started
            eta = elapsed / frac - elapsed if frac > 0 else 0
            line = (f"[{bar:<30}] {ev.step}/{ev.total_steps} loss {ev.loss:.4f} lr {ev.lr:.2e} "
                    f"{ev.tokens_per_s:,.0f} tok/s  mem {format_bytes_in(ev.memory_bytes)}  eta {format_duration(eta)}")
            print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)
            return
        if self.tty:
            print(file=sys.stderr)
        if kind == "eval":
            tail = rewards_text(ev.rewards) if ev.rewards else f"perplexity {ev.perplexity:.2f}"
            print(f"eval @ step {ev.step}: loss {ev.eval_loss:.4f}  {tail}", file=sys.stderr)
        elif kind == "state":
            print(f"{ev.state}{': ' + ev.detail if ev.detail else ''}", file=sys.stderr)
        elif kind == "log":
            print(f"{ev.level}: {ev.message}", file=sys.stderr)
        elif kind == "checkpoint":
            print(f"checkpoint @ step {ev.step}", file=sys.stderr)
        elif kind == "run_started":
            print(f"run {ev.run_dir}\n  {run_method_label(ev.method, ev.objective)} on {ev.device}: {ev.trainable_params:,} trainable of "
                  f"{ev.total_params:,} params; {ev.train_rows} train / {ev.eval_rows} eval rows; {ev.total_steps} steps",
                  file=sys.stderr)
            self.phase_estimate = dict(ev.estimated_phase_bytes)
            if ev.estimated_peak_bytes:
                print(f"  memory: estimated peak {format_bytes_in(ev.estimated_peak_bytes)} of "
                      f"{format_bytes_in(ev.memory_budget_bytes, digits=1)} ({ev.precision})", file=sys.stderr)
        elif kind == "run_finished":
            print(f"{ev.status}: {ev.reason}", file=sys.stderr)
            from studio.core.training.memory_watch import phase_summary
            from studio.core.training.stop_check import summary_line

            for line in (phase_summary(self.phase_estimate, ev.measured_phase_bytes),
                         summary_line(ev.eos_share, ev.eos_checked, ev.eos_limit)):
                if line:
                    print("  " + line, file=sys.stderr)
            from studio.core.training.before_after import report_lines

            for line in report_lines(ev.before_after):
                print("  " + line, file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    import json
    import signal
    from pathlib import Path

    from studio.core.control import Control
    from studio.core.training.engine import train

    cfg = _build_config(args)
    control = Control()
    # Ctrl-C finishes the step and writes a checkpoint instead of losing the run.
    signal.signal(signal.SIGINT, lambda *_: control.request_stop())
    if args.json:
        def emit(ev) -> None:
            print(json.dumps(ev.to_dict()), flush=True)
    else:
        emit = ProgressPrinter()
    run_dir = Path(args.resume or args.out) if (args.resume or args.out) else None
    result = train(cfg, run_dir=run_dir, emit=emit, control=control, resume=bool(args.resume))
    if args.json:
        import os

        # One line per process, so a multi-process launch shows that every rank finished.
        print(json.dumps({"type": "result", "rank": int(os.environ.get("RANK", "0")), "status": result.status,
                          "step": result.step, "run_dir": str(result.run_dir),
                          "adapter_dir": str(result.adapter_dir or "")}), flush=True)
    else:
        print(result.adapter_dir or result.run_dir)
    return 0 if result.status in ("completed", "stopped") else 1
