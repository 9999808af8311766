"""``studio library list|import|rename|delete|restore|empty-trash``: the adapter library, headless."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("library", help="list, import, rename, delete or restore trained adapters")
    verbs = p.add_subparsers(dest="library_verb", metavar="ACTION", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        v = verbs.add_parser(name, help=help_text)
        v.add_argument("--json", action="store_true", help="print the result as JSON")
        v.set_defaults(func=_run)
        return v

    lst = add("list", "show the adapters in the library")
    lst.add_argument("--trash", action="store_true", help="show the trash instead")
    imp = add("import", "add a PEFT adapter folder (checked against its base model)")
    imp.add_argument("folder", help="folder with adapter_config.json and adapter_model.safetensors")
    imp.add_argument("--name", help="name in the library (default: the folder name)")
    imp.add_argument("--base", help="local base model folder, when the adapter's recorded one is elsewhere")
    ren = add("rename", "rename an entry")
    ren.add_argument("id", help="entry id or name")
    ren.add_argument("name", help="the new name")
    dele = add("delete", "move an entry to the trash")
    dele.add_argument("id", help="entry id or name")
    res = add("restore", "bring an entry back from the trash")
    res.add_argument("id", help="entry id or name")
    add("empty-trash", "delete trashed entries for good")


def _row(e) -> str:
    loss = e.metrics.get("eval_loss")
    loss_s = "—" if loss is None else f"{loss:.4f}"
    return f"{e.id}  {e.name:<32} {e.method:<6} eval {loss_s:<8} {e.created[:16]}  base {e.base_model}"


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from studio.cli import print_json
    from studio.core.library import registry

    verb = args.library_verb
    if verb == "list":
        entries = registry.list_trash() if args.trash else registry.list_entries()
        if args.json:
            print_json([e.to_dict() for e in entries])
        elif not entries:
            print("The trash is empty." if args.trash else "The library is empty.")
        else:
            for e in entries:
                print(_row(e))
        return 0
    if verb == "empty-trash":
        n = registry.empty_trash()
        if args.json:
            print_json({"removed": n})
        else:
            print(f"Removed {n} entr{'y' if n == 1 else 'ies'} for good.")
        return 0
    if verb == "import":
        entry = registry.import_adapter(Path(args.folder), args.name, base_model=args.base)
    elif verb == "rename":
        entry = registry.rename(args.id, args.name)
    elif verb == "delete":
        entry = registry.delete(args.id)
    else:
        entry = registry.restore(args.id)
    if args.json:
        print_json(entry.to_dict())
    else:
        done = {"import": "Imported", "rename": "Renamed", "delete": "Moved to trash", "restore": "Restored"}[verb]
        print(f"{done}: {entry.name} ({entry.id})")
    return 0
