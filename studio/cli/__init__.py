"""``studio`` console script: headless verbs on the same core the GUI uses.

Each verb lives in its own module here and exposes ``register(subparsers)``; the parser sets
``func(args) -> int`` on the namespace. Verbs import heavy libraries (torch, peft) inside ``func`` so
``studio --help`` stays instant. With no verb, ``studio`` opens the GUI.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys

from studio.core.errors import StudioError, describe_exception

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_UNREADABLE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Fine-Tuning Studio (no verb opens the desktop app).")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:
        argv = ["gui"]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # the one error path of the CLI: a message, never a traceback
        message, detail = describe_exception(exc)
        if getattr(args, "json", False):
            print_json({"error": message, "detail": detail if not isinstance(exc, StudioError) else exc.detail})
        else:
            print(f"error: {message}", file=sys.stderr)
            if not isinstance(exc, StudioError):
                print("(run with STUDIO_DEBUG=1 for the technical details)", file=sys.stderr)
        import os

        if os.environ.get("STUDIO_DEBUG"):
            print(detail, file=sys.stderr)
        return EXIT_UNREADABLE if isinstance(exc, (StudioError, OSError)) else 3
