"""Sizes, durations and counts read the same wherever they are shown (studio/core/formatting.py)."""

import re
from pathlib import Path

from studio.core import formatting
from studio.core.formatting import (
    GiB,
    KiB,
    MiB,
    format_bytes,
    format_bytes_in,
    format_count,
    format_duration,
    format_seconds,
)


def test_format_bytes_picks_the_largest_unit_reached():
    assert format_bytes(3 * GiB) == "3.00 GiB"
    assert format_bytes(1536 * KiB) == "1.50 MiB"
    assert format_bytes(KiB) == "1.00 KiB"
    assert format_bytes(KiB - 1) == "1023 B"
    assert format_bytes(12) == "12 B"
    assert format_bytes(0) == "0 B"
    assert format_bytes(-2 * MiB) == "-2.00 MiB"  # a shortfall reads in the same unit as a size


def test_format_bytes_precision_is_the_callers():
    # The Library's size columns: one decimal, as its screenshots show.
    assert format_bytes(9.5 * MiB, 1) == "9.5 MiB"
    assert format_bytes(10 * KiB, 1) == "10.0 KiB"
    assert format_bytes(5000, 1) == "4.9 KiB"
    assert format_bytes(700, 1) == "700 B"


def test_format_bytes_in_keeps_one_unit_whatever_the_size():
    assert format_bytes_in(512 * MiB) == "0.50 GiB"
    assert format_bytes_in(int(2.07 * GiB)) == "2.07 GiB"
    assert format_bytes_in(64 * GiB, digits=1) == "64.0 GiB"
    assert format_bytes_in(3 * GiB, "MiB", 1) == "3072.0 MiB"


def test_format_duration_reads_like_a_clock():
    assert format_duration(0) == "0:00"
    assert format_duration(65.9) == "1:05"
    assert format_duration(3599) == "59:59"
    assert format_duration(3600 + 2 * 60 + 3) == "1:02:03"
    assert format_duration(-5) == "0:00"  # a clock that went backwards never shows a negative time


def test_format_seconds():
    assert format_seconds(1.04) == "1.0 s"
    assert format_seconds(0.437, 2) == "0.44 s"
    assert format_seconds(600, 0) == "600 s"


def test_format_count_like_model_cards():
    assert format_count(134_515_008) == "135 M"
    assert format_count(70_553_706_496) == "70.6 B"
    assert format_count(2_442_240) == "2.44 M"
    assert format_count(1_500) == "1.50 K"
    assert format_count(999) == "999"
    assert format_count(2 * 10**12) == "2.00 T"


def test_sizes_and_times_are_not_formatted_by_hand_elsewhere():
    studio = Path(formatting.__file__).resolve().parent.parent
    by_hand = re.compile(r"/ ?(2 ?\*\* ?(20|30)|1024 ?\*\* ?[23]|GiB|MiB)\s*:[,.\d]*f\}|def (human_bytes|_fmt_duration|_dur|_gib)\b")
    found = [f"{path.relative_to(studio.parent)}:{n}: {line.strip()}"
             for path in sorted(studio.rglob("*.py")) if path != Path(formatting.__file__).resolve()
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if by_hand.search(line)]
    assert found == [], "use studio/core/formatting.py:\n" + "\n".join(found)


def test_a_run_is_named_with_its_objective_when_it_is_not_supervised():
    from studio.core.formatting import run_method_label

    assert run_method_label("lora") == "LoRA" and run_method_label("qlora", "sft") == "QLoRA"
    assert run_method_label("lora", "dpo") == "DPO on LoRA" and run_method_label("qlora", "orpo") == "ORPO on QLoRA"
