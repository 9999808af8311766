"""``studio install-desktop [--uninstall]``: add the studio to (or remove it from) the application menu.

Per user, under ``$XDG_DATA_HOME`` (default ``~/.local/share``); the entry starts this installation.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install-desktop",
                       help="add the studio to this user's application menu (entry + icons), pointing at this install")
    p.add_argument("--uninstall", action="store_true", help="remove the entry and icons that install-desktop wrote")
    p.add_argument("--json", action="store_true", help="print the files written or removed as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from studio.cli import print_json
    from studio.core import desktop_install as desktop

    if args.uninstall:
        files = desktop.uninstall()
        verb = "removed"
    else:
        files = desktop.install()
        verb = "installed"
    if args.json:
        print_json({verb: [str(f) for f in files], "exec": None if args.uninstall else desktop.studio_command()})
        return 0
    if args.uninstall:
        print(f"Removed {len(files)} file(s)." if files else "Nothing to remove: the studio was not installed here.")
    else:
        entry = desktop.installed_paths()["entry"]
        print(f"Installed {entry} and {len(files) - 2} icon(s); it starts {' '.join(desktop.studio_command())}.")
        print("It appears in the application menu as 'Fine-Tuning Studio' (log out and in if the menu is slow to notice).")
    for f in files:
        print(f"  {f}")
    return 0
