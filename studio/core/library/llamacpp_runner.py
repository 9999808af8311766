"""Run a GGUF in llama.cpp (through ``llama-cpp-python``) in a child process, for the export's proof.

llama.cpp is the runtime behind Ollama, LM Studio and llama-server, so a GGUF is only proven when
llama.cpp itself loads it, tokenizes like the trained model and predicts the same tokens. It runs in
a child process because it is native code that can crash on a file it dislikes (or, on some CPUs, in
its batched prompt decode): a crash must fail the proof, not take the studio window down with it.
Prompts are decoded one token per batch (``n_batch=1``), the path that works on every CPU we tried.

Child protocol, ``python -m studio.core.library.llamacpp_runner``:
  ``logits GGUF JOB.json OUT_DIR``  JOB = {"sequences": [[ids…]…], "texts": [rendered chat…]};
                                     writes ``logits-<i>.npy`` ([T, V] float32) and ``tokens.json``
                                     (llama.cpp's own ids for each text) into OUT_DIR.
  ``quantize IN.gguf OUT.gguf TYPE`` llama.cpp's quantizer (e.g. Q4_K_M) from an f16/bf16 GGUF.
  ``tokens GGUF JOB.json OUT_DIR``   JOB = {"texts": […]}; loads the vocabulary only and writes
                                     ``tokens.json`` (llama.cpp's ids for each text, specials parsed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.formatting import format_seconds

# llama.cpp's LLAMA_FTYPE_* for the quant types its own quantizer makes.
QUANT_FTYPES = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
INSTALL_HINT = ("install the llamacpp extra (in the studio's folder: .venv/bin/pip install -e '.[llamacpp]'; pip builds "
                "llama.cpp once, about 6 minutes)")


def available() -> bool:
    """Whether llama-cpp-python is installed (found without importing it: that loads native code)."""
    return importlib.util.find_spec("llama_cpp") is not None


def _child(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "studio.core.library.llamacpp_runner", *args],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StudioError(f"llama.cpp did not finish within {format_seconds(timeout, 0)}; the check was stopped.") from None


def _failure(proc: subprocess.CompletedProcess, what: str, path: Path) -> StudioError:
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    how = f"crashed (signal {-proc.returncode})" if proc.returncode < 0 else f"failed (exit {proc.returncode})"
    return StudioError(f"llama.cpp {how} while {what}: {' '.join(tail) or 'no message'}", path=path,
                       detail=proc.stderr)


def gguf_logits(gguf: Path, sequences: list[list[int]], texts: list[str], *,
                timeout: float = 1800) -> tuple[list[Any], list[list[int]]]:
    """(logits [T, V] per sequence as torch tensors, llama.cpp's token ids for each text)."""
    import numpy as np
    import torch

    with tempfile.TemporaryDirectory(prefix="studio-llamacpp-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"sequences": sequences, "texts": texts}), encoding="utf-8")
        proc = _child(["logits", str(gguf), str(job), tmp], timeout)
        if proc.returncode != 0:
            raise _failure(proc, "running the GGUF", gguf)
        logits = [torch.from_numpy(np.load(Path(tmp) / f"logits-{i}.npy")) for i in range(len(sequences))]
        tokens = json.loads((Path(tmp) / "tokens.json").read_text(encoding="utf-8"))
    return logits, tokens


def gguf_tokens(gguf: Path, texts: list[str], *, timeout: float = 300) -> list[list[int]]:
    """llama.cpp's token ids for each text (no BOS added, special tokens parsed), from the vocabulary alone:
    how a runtime will tokenize what the studio trained on, without loading any weights."""
    with tempfile.TemporaryDirectory(prefix="studio-llamacpp-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"texts": texts}), encoding="utf-8")
        proc = _child(["tokens", str(gguf), str(job), tmp], timeout)
        if proc.returncode != 0:
            raise _failure(proc, "tokenizing with the GGUF's vocabulary", gguf)
        return json.loads((Path(tmp) / "tokens.json").read_text(encoding="utf-8"))


def quantize(src: Path, dest: Path, quant: str, *, timeout: float = 3600) -> Path:
    """Write ``dest`` with llama.cpp's own quantizer (k-quants need its importance-aware code)."""
    if quant not in QUANT_FTYPES:
        raise StudioError(f"llama.cpp quantization '{quant}' is not one of {', '.join(QUANT_FTYPES)}.")
    if not available():
        raise StudioError(f"{quant.upper()} is made by llama.cpp's quantizer, which is not installed here; {INSTALL_HINT}.")
    proc = _child(["quantize", str(src), str(dest), quant], timeout)
    if proc.returncode != 0 or not Path(dest).is_file():
        raise _failure(proc, f"quantizing to {quant.upper()}", src)
    return dest


# ---------------------------------------------------------------- the child's side


def _run_logits(gguf: str, job_file: str, out_dir: str) -> None:
    import numpy as np
    from llama_cpp import Llama

    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    longest = max((len(s) for s in job["sequences"]), default=1)
    llm = Llama(model_path=gguf, n_ctx=max(64, longest + 8), n_batch=1, n_ubatch=1, logits_all=True,
                verbose=False, n_threads=max(1, min(8, os.cpu_count() or 1)))
    try:
        for i, ids in enumerate(job["sequences"]):
            llm.reset()
            llm.eval(ids)
            np.save(Path(out_dir) / f"logits-{i}.npy", np.asarray(llm.scores[: len(ids)], dtype=np.float32))
        tokens = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in job["texts"]]
        (Path(out_dir) / "tokens.json").write_text(json.dumps(tokens), encoding="utf-8")
    finally:
        llm.close()


def _run_tokens(gguf: str, job_file: str, out_dir: str) -> None:
    from llama_cpp import Llama

    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    llm = Llama(model_path=gguf, vocab_only=True, verbose=False)
    try:
        tokens = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in job["texts"]]
        (Path(out_dir) / "tokens.json").write_text(json.dumps(tokens), encoding="utf-8")
    finally:
        llm.close()


def _run_quantize(src: str, dest: str, quant: str) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_FTYPES[quant]
    params.nthread = max(1, os.cpu_count() or 1)
    rc = llama_cpp.llama_model_quantize(src.encode(), dest.encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize returned {rc}")


if __name__ == "__main__":
    verb, *rest = sys.argv[1:]
    {"logits": _run_logits, "quantize": _run_quantize, "tokens": _run_tokens}[verb](*rest)
