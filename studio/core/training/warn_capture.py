"""Warnings the libraries print during a run that the user must read in the run's log.

torch warns, from C++, that bitsandbytes' 4-bit CPU kernels have no gradient rule and that
backpropagating through them "may lead to silently incorrect behavior". A console line nobody reads
is no warning at all in a desktop app, so while a run trains such warnings also become ``Log``
events (journaled and shown in the run log), once per distinct text.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator

# What makes a library warning the user's business: it is about bitsandbytes, or about correctness.
_RELEVANT = re.compile(r"bitsandbytes|silently incorrect", re.IGNORECASE)
_KERNEL = re.compile(r"bitsandbytes::(\w+)")


def user_text(message: str, *, qlora_on_cpu: bool) -> str:
    """The warning's first sentences, with what it means for this run and what to do."""
    head = message.split("This behavior is deprecated", 1)[0].strip()
    if "silently incorrect" in message:
        kernel = _KERNEL.search(message)
        where = f"bitsandbytes' {kernel.group(1)}" if kernel else "a bitsandbytes 4-bit layer"
        prefix = "QLoRA on CPU: " if qlora_on_cpu else ""
        return (f"{prefix}torch warns that {where} has no gradient rule here and that training through it "
                "\"may lead to silently incorrect behavior\". 4-bit training on CPU is experimental: check "
                f"that the eval loss falls, or use LoRA (or a CUDA GPU) for a run you rely on. [{head}]")
    return f"bitsandbytes: {head}"


@contextlib.contextmanager
def warnings_to_log(log: Callable[[str], None], *, qlora_on_cpu: bool = False) -> Iterator[None]:
    """Within the block, relevant warnings go to ``log`` once each (and to the console as before)."""
    seen: set[str] = set()
    with warnings.catch_warnings():
        # "always": Python's default shows a warning once per code location per process, which would
        # hide it from a second run in the same window; the ``seen`` set keeps it once per run instead.
        warnings.filterwarnings("always", message=".*(bitsandbytes|silently incorrect)")
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            text = str(message)
            if not _RELEVANT.search(text) and "bitsandbytes" not in str(filename):
                previous(message, category, filename, lineno, file, line)
                return
            key = _KERNEL.sub("bitsandbytes::", text)  # one line per kind of warning, not per kernel
            if key in seen:
                return
            seen.add(key)
            previous(message, category, filename, lineno, file, line)
            with contextlib.suppress(Exception):  # a log that fails must not fail the run
                log(user_text(text, qlora_on_cpu=qlora_on_cpu))

        warnings.showwarning = show
        yield
