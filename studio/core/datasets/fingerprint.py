"""The dataset fingerprint: one string naming the exact bytes a run was checked and trained on.

Format, decided once for the dataset check, the run journal and the Library: lowercase sha256 hex
with no prefix. For one file it is that file's sha256 (what ``sha256sum`` prints, so a person can
compare it by hand); for several files (the training files, then the eval files, in the order the
run config lists them) it is the sha256 of their 32-byte digests concatenated in that order, so
order matters as it does for the rows. ``studio validate --json``, the Dataset pane, the journal's
``RunStarted``/``RunFinished`` and the Library entry all carry this string.

Runs and Library entries written before this format carry ``"sha256:"`` + the sha256 of the
training files' bytes concatenated (eval files left out). They are shown as stored and never
rewritten: the prefix tells a reader they are of the older kind, and no new fingerprint can equal
one by accident.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from studio.core.errors import StudioError
from studio.core.fsutil import file_sha256


def combine_digests(digests: list[str]) -> str:
    """One file's digest unchanged; several combined in order (see the module docstring)."""
    if len(digests) == 1:
        return digests[0]
    h = hashlib.sha256()
    for d in digests:
        h.update(bytes.fromhex(d))
    return h.hexdigest()


def fingerprint(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> str:
    """The fingerprint of these files' bytes, in order (training files first, then eval files)."""
    plist = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    digests = []
    for p in plist:
        try:
            digests.append(file_sha256(p))
        except OSError as err:
            raise StudioError("Cannot read the file to fingerprint it.", path=p, detail=str(err)) from None
    return combine_digests(digests)


def dataset_fingerprint(train: Iterable[str | os.PathLike], eval: Iterable[str | os.PathLike] = ()) -> str:
    """The fingerprint a run records: its training files, then its eval files (none when the eval
    rows are held out of the training files), as ``studio validate FILES --eval EVAL`` reports it."""
    return fingerprint([*train, *eval])
