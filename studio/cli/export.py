"""``studio export ADAPTER --merge --out DIR``: merged model (+ GGUF) or adapter-only export, with proof."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.core.library.gguf_export import GGUF_TYPES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="merge an adapter into its base model and export it (optionally as GGUF)")
    p.add_argument("adapter", metavar="ADAPTER",
                   help="adapter folder, run folder, or library entry name/id (a full fine-tune exports its model)")
    p.add_argument("--out", required=True, help="destination folder (or .zip for an adapter-only export)")
    p.add_argument("--merge", action="store_true", help="merge into the base model (default: adapter files only)")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"],
                   help="weights dtype of the merged model (default bf16); a full model keeps its own unless given")
    p.add_argument("--gguf", choices=list(GGUF_TYPES),
                   help="also write a GGUF (implies --merge) and an Ollama Modelfile; q4_k_m needs the llamacpp extra")
    p.add_argument("--no-check", action="store_true", help="skip the equivalence proof (not recommended)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the destination if it is an earlier export (any other folder is refused)")
    p.add_argument("--allow-pickle", action="store_true", help="allow a base model stored as pickle .bin files")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a base model that ships Python code")
    p.add_argument("--json", action="store_true", help="print the export report as JSON")
    p.set_defaults(func=_run)


def resolve_adapter(arg: str) -> Path:
    """The adapter folder ``arg`` names (a folder, a run folder, or a library entry's name or id)."""
    from studio.cli._args import find_adapter

    found = find_adapter(arg)
    return found if isinstance(found, Path) else found.files_dir


def _run(args: argparse.Namespace) -> int:
    from studio.cli import EXIT_FINDINGS, print_json
    from studio.core.library.merge import export_model

    def progress(frac: float, msg: str) -> None:
        print(f"[{frac * 100:3.0f}%] {msg}", file=sys.stderr)

    adapter = resolve_adapter(args.adapter)
    from studio.core.library.full_model import is_model_folder

    full = is_model_folder(adapter)  # a full fine-tune: written as it is (or in --dtype), no merge
    report = export_model(
        adapter, Path(args.out), merge=bool(args.dtype) if full else (args.merge or bool(args.gguf)),
        dtype=args.dtype or "bf16", gguf=args.gguf,
        progress=progress, check=not args.no_check, overwrite=args.overwrite, allow_pickle=args.allow_pickle,
        trust_remote_code=args.trust_remote_code,
    )
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.summary())
        print(report.out_dir)
    return EXIT_FINDINGS if report.status == "failed" else 0
