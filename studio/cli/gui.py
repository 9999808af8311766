"""``studio gui``: open the desktop app (also what plain ``studio`` does)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="open the desktop studio (default)")
    p.add_argument("--dataset", help="open this dataset file instead of the demo")
    p.add_argument("--model", help="select this model folder instead of the bundled model")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import sys

    from studio.cli._qt_libs import window_problem

    problem = window_problem()  # before Qt: it aborts the process with a misleading message
    if problem:
        print(problem, file=sys.stderr)
        return 2
    from studio.qt.app import main as gui_main

    return gui_main(dataset=args.dataset, model=args.model)
