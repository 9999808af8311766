"""``studio import-gguf FILE``: convert a GGUF into the model store."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-gguf", help="convert a GGUF (Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3…) into the model store (bf16 safetensors)")
    p.add_argument("file", help="the .gguf file")
    p.add_argument("--name", help="name in the store (default: file name)")
    p.add_argument("--out", help="write the HF folder here instead of the store")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it holds an earlier import (any other folder is refused)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from studio.cli import print_json
    from studio.core.models.gguf_import import import_gguf
    from studio.core.models.store import import_gguf_to_store

    def progress(frac: float, msg: str) -> None:
        print(f"[{frac * 100:3.0f}%] {msg}", file=sys.stderr)

    if args.out:
        dest = import_gguf(Path(args.file), Path(args.out), progress=progress, overwrite=args.overwrite)
    else:
        dest = import_gguf_to_store(Path(args.file), args.name, progress=progress)
    if args.json:
        print_json({"path": str(dest)})
    else:
        print(dest)
    return 0
