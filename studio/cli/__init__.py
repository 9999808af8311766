"""``studio`` console script: headless verbs on the same core the GUI uses.

Each verb lives in its own module here and exposes ``register(subparsers)``; the parser sets
``func(args) -> int`` on the namespace. Verbs import heavy libraries (torch, peft) inside ``func`` so
``studio --help`` stays instant. With no verb, ``studio`` opens the GUI.

Exit codes (the same for every verb; ``EXIT_CODES`` is what ``studio --help`` prints):
0 done; 1 done, with a negative answer (findings with errors, a failed or non-finite run, an export
whose proof failed, a run that does not fit); 2 the input cannot be used (a bad flag, file, folder or
config: the message says which and what to do; nothing was changed); 3 an internal error, a bug in
the studio (the message names it; ``STUDIO_DEBUG=1`` adds the traceback); 130 interrupted (Ctrl-C).
With ``--json`` an error is one object ``{"error": …, "exit_code": …}``; its ``detail`` (technical
text) is only there under ``STUDIO_DEBUG=1``.
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
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FINDINGS: "done, with a negative answer: dataset errors, a failed run, a failed export proof, does not fit",
    EXIT_UNREADABLE: "the input cannot be used (bad flag, file, folder or config); nothing was changed",
    EXIT_INTERNAL: "internal error (a bug in the studio); STUDIO_DEBUG=1 shows the traceback",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


def build_parser() -> argparse.ArgumentParser:
    epilog = "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())
    parser = argparse.ArgumentParser(prog="studio", description="Fine-Tuning Studio (no verb opens the desktop app).",
                                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def safe_text(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (a lone surrogate from a ``\\ud800`` escape or an odd
    file name) written as an escape, so printing a message can never itself fail."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def print_json(obj: object) -> None:
    sys.stdout.write(safe_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str)) + "\n")


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
        return EXIT_INTERRUPTED
    except Exception as exc:  # the one error path of the CLI: a message, never a traceback
        return report_error(exc, as_json=bool(getattr(args, "json", False)))


def exit_code_for(exc: BaseException) -> int:
    """2 for what the user can fix (our StudioError, the OS refusing a file), 3 for a bug."""
    return EXIT_UNREADABLE if isinstance(exc, (StudioError, OSError, MemoryError)) else EXIT_INTERNAL


def report_error(exc: BaseException, *, as_json: bool) -> int:
    """Print ``exc`` as the user should see it and return the exit code; the traceback only on request."""
    import os

    message, detail = describe_exception(exc)
    debug = bool(os.environ.get("STUDIO_DEBUG"))
    code = exit_code_for(exc)
    if as_json:
        out: dict = {"error": message, "exit_code": code}
        if isinstance(exc, StudioError):
            out.update({k: v for k, v in (("path", exc.path), ("line", exc.line)) if v is not None})
        if debug:
            out["detail"] = detail
        print_json(out)
    else:
        print(f"error: {safe_text(message)}", file=sys.stderr)
        if code == EXIT_INTERNAL and not debug:
            print("(this is a bug in the studio; run with STUDIO_DEBUG=1 for the technical details)", file=sys.stderr)
    if debug:
        print(safe_text(detail), file=sys.stderr)
    return code
