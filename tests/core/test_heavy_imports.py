"""The ML stack is imported under one lock, so workers that start together do not race on it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_module_itself_is_light():
    code = "import sys, studio.core.heavy_imports; print('transformers' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_threads_starting_together_all_get_their_names():
    # A fresh interpreter, so the first resolution really happens inside the racing threads.
    code = textwrap.dedent("""
        import threading
        from studio.core.heavy_imports import ensure

        errors, barrier = [], threading.Barrier(4)

        def tokenizer_side():
            barrier.wait()
            try:
                ensure()
                from transformers import AutoTokenizer  # noqa: F401
            except Exception as exc:
                errors.append(repr(exc))

        def config_side():
            barrier.wait()
            try:
                ensure("peft")
                from transformers import AutoConfig  # noqa: F401
                from peft import LoraConfig  # noqa: F401
            except Exception as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=f) for f in (tokenizer_side, config_side) * 2]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("errors:", errors)
        assert not errors
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "errors: []" in out.stdout
