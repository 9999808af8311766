"""``studio compare ADAPTER… --prompts FILE``: the base and each adapter on one prompt set, scored.

The headless twin of the Library room's playground: the same core (one base loaded, adapters
hot-swapped), the same scores (eval loss of the expected answers, exact match). Exit 0 when the
comparison ran, 2 when the input cannot be used (a missing or malformed prompt file, an unknown
adapter, adapters of different base models), with a message that says what to fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studio.cli._args import number

DEFAULT_NEW_TOKENS = 64


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="run the base model and adapters on a prompt set; eval loss and exact match")
    p.add_argument("adapters", metavar="ADAPTER", nargs="+", help="library entry name/id, or adapter folder")
    p.add_argument("--prompts", required=True, metavar="FILE",
                   help='JSONL of {"prompt": ..., "expected": ...} (expected optional); chat datasets work too')
    p.add_argument("--base", metavar="DIR", help="base model folder (default: the one the first adapter was trained on)")
    p.add_argument("--max-new-tokens", type=number(int, min=1, max=32768), default=DEFAULT_NEW_TOKENS, metavar="N",
                   help=f"longest answer per prompt (default {DEFAULT_NEW_TOKENS})")
    p.add_argument("--temperature", type=number(float, min=0, max=100), default=0.0, help="0 = greedy, the default (exact match wants it)")
    p.add_argument("--top-p", type=number(float, above=0, max=1), default=1.0, help="nucleus sampling (0 < p ≤ 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object with every output and score")
    p.set_defaults(func=_run)


def resolve(arg: str):
    """An adapter folder (or a folder with ``adapter/`` inside) or a library entry, as an AdapterRef."""
    from studio.cli._args import find_adapter
    from studio.core.library.playground import adapter_ref

    return adapter_ref(find_adapter(arg))


def _check_same_base(refs: list, base: Path) -> None:
    """Refuse before loading anything when a recorded base identity says an adapter belongs elsewhere,
    or that its base folder no longer holds the model it was trained on."""
    from studio.core.errors import StudioError
    from studio.core.models.identity import base_identity, identity_change

    current = base_identity(base)
    changed = {r.key: identity_change(r.base_hash, base, current=current) for r in refs}
    wrong = [r for r in refs if changed[r.key] is not None]
    here = [r for r in wrong if r.base_model and Path(r.base_model).expanduser().resolve() == base.resolve()]
    if here:
        r = here[0]
        raise StudioError(f"The base model in {base} changed since '{r.label}' was trained ({changed[r.key]}); "
                          "restore the original model files, or retrain the adapter on the model as it is now.")
    if wrong:
        names = ", ".join(f"'{r.label}' (trained on {Path(r.base_model).name or 'another model'})" for r in wrong)
        raise StudioError(f"Not all adapters were trained on {base.name}: {names}. Compare adapters of one base "
                          "model at a time, or pass that model with --base.")


def _short(text: str, width: int) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def _print_table(report) -> None:
    for i, item in enumerate(report.items):
        print(f"#{i + 1} {_short(item.prompt, 100)}")
        if item.expected is not None:
            print(f"    expected: {_short(item.expected, 90)}")
        for col in report.columns:
            out = col.generations[i].text if i < len(col.generations) else ""
            mark = "" if item.expected is None else ("  ✓" if out.strip() == item.expected.strip() else "  ✗")
            print(f"    {col.label:<24} {_short(out, 80)}{mark}")
        print()
    width = max(8, *(len(c.label) for c in report.columns))
    print(f"{'column':<{width}}  {'eval loss':>9}  {'exact match':>13}  {'stops (EOS)':>11}  {'tok/s':>7}")
    for c in report.columns:
        loss = "—" if c.eval_loss is None else f"{c.eval_loss:.4f}"
        em = "—" if c.exact_match is None else f"{c.matches}/{c.scored} ({c.exact_match * 100:.0f}%)"
        stops = "—" if c.stop_share is None else f"{c.stop_share * 100:.0f}%"
        print(f"{c.label:<{width}}  {loss:>9}  {em:>13}  {stops:>11}  {c.tokens_per_s:>7.1f}")


def _run(args: argparse.Namespace) -> int:
    from studio.cli import print_json
    from studio.core.library.adapter_files import resolve_base
    from studio.core.library.playground import GenerationSettings, Playground
    from studio.core.library.prompt_set import load_prompt_set, run_columns

    settings = GenerationSettings(temperature=args.temperature, top_p=args.top_p,
                                  max_new_tokens=args.max_new_tokens, seed=args.seed).checked()
    items = load_prompt_set(Path(args.prompts))
    refs = [resolve(a) for a in args.adapters]
    base = resolve_base(refs[0].adapter_dir, args.base)
    _check_same_base(refs, base)

    def progress(_f: float, msg: str) -> None:
        print(msg, file=sys.stderr)

    playground = Playground(base, progress=progress)
    columns = [None, *refs]

    def on_event(ev) -> None:
        if ev.kind == "start" and ev.item == 0:
            label = "base" if columns[ev.column] is None else columns[ev.column].label
            print(f"[{label}] {len(items)} prompt(s)…", file=sys.stderr)

    report = run_columns(playground, items, columns, settings, on_event=on_event)
    if args.json:
        print_json(report.to_dict())
    else:
        _print_table(report)
    return 0
