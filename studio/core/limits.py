"""Bounds shared by the run config and the command line, in a module light enough for ``--help``."""

MIN_SEQ_LEN = 8  # shorter than a chat template's own markers: nothing of the answer would be trained
