"""``studio validate``: the Dataset pane's checks, headless. Exit 0 clean, 1 errors, 2 unreadable."""

from __future__ import annotations

import argparse
import sys

from studio.cli import safe_text
from studio.cli._args import number
from studio.core.limits import MIN_SEQ_LEN


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check dataset files before training (format, problems, token lengths)")
    p.add_argument("files", nargs="+", metavar="FILE", help=".jsonl, .json, .csv or .parquet (several are appended)")
    p.add_argument("--model", metavar="DIR", help="local model folder whose tokenizer drives the token checks")
    p.add_argument("--template", choices=["chatml", "llama3", "gemma", "mistral", "alpaca"], default="",
                   help="chat format for a model without its own template (base models); see model.chat_template")
    p.add_argument("--max-len", type=number(int, min=MIN_SEQ_LEN), metavar="N",
                   help="max sequence length for token checks (default 512)")
    p.add_argument("--eval", action="extend", nargs="+", metavar="FILE", default=[], help="separate eval file(s): checks leakage")
    p.add_argument("--eval-ratio", type=number(float, above=0, below=1), metavar="R", help="check leakage against the seeded hold-out split instead")
    p.add_argument("--seed", type=int, default=42, help="split seed (with --eval-ratio)")
    p.add_argument("--map", metavar="ROLE=COLUMN", action="append", default=[],
                   help="map unknown columns, e.g. --map prompt=question --map answer=reply")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _column_map(pairs: list[str]) -> dict[str, str]:
    from studio.core.errors import StudioError

    out = {}
    for pair in pairs:
        role, _, column = pair.partition("=")
        if role not in ("prompt", "answer", "system") or not column:
            raise StudioError(f"Bad --map '{pair}'. Use prompt=COLUMN, answer=COLUMN or system=COLUMN.")
        out[role] = column
    if out and not {"prompt", "answer"} <= out.keys():
        raise StudioError("--map needs both prompt=COLUMN and answer=COLUMN.")
    return out


def _run(args: argparse.Namespace) -> int:
    from studio.cli import print_json
    from studio.core.datasets.pipeline import check_files
    from studio.core.datasets.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(args.model) if args.model else None
    max_len = args.max_len if args.max_len is not None else (512 if tokenizer is not None else None)
    report = check_files(
        args.files, eval_paths=args.eval, tokenizer=tokenizer, max_len=max_len,
        column_map=_column_map(args.map), eval_ratio=args.eval_ratio, split_seed=args.seed,
        model_dir=args.model, chat_template=args.template,
    )
    if args.json:
        print_json(printable(report.to_dict()))
    else:
        print_human(report)
    return report.exit_code


def printable(obj):
    """The same data with any unencodable text (lone surrogates from odd file names or
    ``\\ud800`` escapes in the data) shown as escapes, so printing can never fail."""
    if isinstance(obj, str):
        return safe_text(obj)
    if isinstance(obj, dict):
        return {printable(k): printable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [printable(v) for v in obj]
    return obj


def _lines_text(lines: list[int], limit: int = 8) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (f" … ({len(lines)} in all)" if len(lines) > limit else "")


def print_human(report, out=None) -> None:
    stream = out or sys.stdout

    def emit(text: str) -> None:
        stream.write(printable(text) + "\n")

    names = ", ".join(f.path for f in report.files)
    fp = report.fingerprint_caption
    emit(f"{names}: {report.rows} row{'' if report.rows == 1 else 's'}, format {report.format}" + (f", {fp}" if fp else ""))
    if report.columns:
        emit(f"  columns: {', '.join(report.columns)} (map them with --map prompt=COL --map answer=COL)")
    for f in report.findings:
        where = f"{f.file}:{f.lines[0]}" if f.lines else f.file
        emit(f"{where}  {f.severity.upper():7} {f.code}  {f.message}")
        if len(f.lines) > 1:
            emit(f"    lines {_lines_text(f.lines)}")
    tokens = report.stats.get("tokens")
    if tokens:
        emit(f"tokens per row: median {tokens['p50']}, p90 {tokens['p90']}, max {tokens['max']} "
              f"(max length {tokens['cutoff']})")
    pref = report.stats.get("preference")
    if pref:
        ratio = f" (ratio {pref['length_ratio']:.2f}, chosen longer in {pref['chosen_longer_share']:.0%})" \
            if pref["length_ratio"] is not None else ""
        emit(f"preference pairs: {pref['pairs']}, mean answer length chosen {pref['chosen_mean_chars']:.0f} / "
             f"rejected {pref['rejected_mean_chars']:.0f} characters{ratio}")
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = "cannot be read" if report.fatal else ("has errors" if n_err else "ok")
    emit(f"{n_err} error(s), {n_warn} warning(s): {verdict}.")
