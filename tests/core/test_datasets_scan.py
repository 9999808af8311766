"""Scanning: every file type, formats per row, rows as they load, compact storage."""

from __future__ import annotations

import hashlib
import json
import math
import re

import pytest
from datasets_helpers import alpaca, write_jsonl

from studio.core.datasets.fingerprint import fingerprint
from studio.core.datasets.formats import to_example
from studio.core.datasets.load import read_rows
from studio.core.datasets.scan import scan
from studio.core.errors import StudioError

ROWS = {
    "alpaca": {"instruction": "Add 2 and 2.", "input": "", "output": "4."},
    "prompt_completion": {"prompt": "Capital of France?", "completion": "Paris."},
    "text": {"text": "Raw pretraining text."},
    "messages": {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
}


@pytest.mark.parametrize("fmt", list(ROWS))
def test_each_format_is_detected(tmp_path, fmt):
    result = scan(write_jsonl(tmp_path / "d.jsonl", [ROWS[fmt]] * 2 + [dict(ROWS[fmt], extra=1)]))
    assert result.format == fmt
    assert result.format_counts == {fmt: 3}
    assert not [f for f in result.findings if f.severity == "error"]


def test_mixed_file_is_mixed_and_points_at_the_minority(tmp_path):
    rows = [ROWS["alpaca"]] * 5 + [ROWS["text"]] + [ROWS["alpaca"]] * 3
    result = scan(write_jsonl(tmp_path / "m.jsonl", rows))
    assert result.format == "mixed"
    mixed = next(f for f in result.findings if f.code == "format.mixed")
    assert mixed.severity == "warning" and mixed.lines == [6] and mixed.rows == [5]


def test_unknown_columns_are_listed_and_a_column_map_fixes_them(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [{"question": f"q{i}", "reply": f"r{i}.", "sys": "Be nice."} for i in range(3)])
    result = scan(path)
    assert result.format == "unknown"
    assert result.columns == ["question", "reply", "sys"]
    mapped = scan(path, column_map={"prompt": "question", "answer": "reply", "system": "sys"})
    assert mapped.format == "prompt_completion" and not mapped.findings
    assert mapped.example(0).messages == (("system", "Be nice."), ("user", "q0"), ("assistant", "r0."))


def test_json_array_object_csv_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [alpaca(i) for i in range(4)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "o.json").write_text(json.dumps({"version": 2, "data": rows}))
    (tmp_path / "c.csv").write_text("instruction,input,output\n" + "".join(f"Question {i}?,,Answer {i}.\n" for i in range(4)))
    chats = [ROWS["messages"], ROWS["messages"] | {"messages": ROWS["messages"]["messages"] * 2}]
    pq.write_table(pa.Table.from_pylist(chats), tmp_path / "p.parquet")
    for name, n, fmt in [("a.json", 4, "alpaca"), ("o.json", 4, "alpaca"), ("c.csv", 4, "alpaca"), ("p.parquet", 2, "messages")]:
        result = scan(tmp_path / name)
        assert (len(result), result.format) == (n, fmt), name
        assert not result.findings or all(f.severity == "warning" for f in result.findings), result.findings
    assert scan(tmp_path / "a.json").store.lines.tolist() == [0, 1, 2, 3]     # element indices
    assert scan(tmp_path / "c.csv").store.lines.tolist() == [2, 3, 4, 5]      # file lines
    assert scan(tmp_path / "p.parquet").example(1).messages[2] == ("user", "Hi")


def test_csv_chat_column_holding_json(tmp_path):
    path = tmp_path / "chat.csv"
    turns = json.dumps(ROWS["messages"]["messages"]).replace('"', '""')
    path.write_text(f'messages\n"{turns}"\n')
    result = scan(path)
    assert result.format == "messages" and result.features.trainable[0]


def test_several_files_append_in_order(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [alpaca(1), alpaca(2)])
    b = tmp_path / "b.json"
    b.write_text(json.dumps([alpaca(3)]))
    result = scan([a, b])
    assert len(result) == 3
    assert [r.source for r in result.rows(0, 3)] == [str(a), str(a), str(b)]
    assert [r.line for r in result.rows(0, 3)] == [1, 2, 0]
    assert [f.first_row for f in result.files] == [0, 2]
    assert result.fingerprint() == fingerprint([a, b])


def test_rows_arrive_in_chunks_before_the_scan_ends(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", [alpaca(i) for i in range(4500)])
    calls = []
    result = scan(path, on_rows=lambda rows: calls.append([r.line for r in rows]), chunk=2000)
    assert [len(c) for c in calls] == [2000, 2000, 500]
    assert calls[0][:3] == [1, 2, 3]
    assert result.first_rows_seconds is not None and result.first_rows_seconds <= result.seconds


def test_store_gives_back_every_row_and_stays_compact(tmp_path):
    rows = [alpaca(i, "answer " * (i % 50)) for i in range(5000)]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    result = scan(path, chunk=700)
    assert [result.row(i).data for i in (0, 699, 700, 4999)] == [rows[0], rows[699], rows[700], rows[4999]]
    assert result.store.nbytes < 1.5 * path.stat().st_size
    table = result.store.to_arrow()
    assert table.num_rows == 5000 and json.loads(table.column("json")[123].as_py()) == rows[123]
    assert [ex for _, ex in result.iter_examples()][10] == to_example(rows[10])


def test_scan_agrees_with_the_strict_reader_on_good_files(tmp_path):
    rows = [ROWS[f] for f in ROWS] * 3
    path = write_jsonl(tmp_path / "ok.jsonl", rows)
    strict = read_rows(path)
    result = scan(path)
    assert [r.data for r in strict] == [result.row(i).data for i in range(len(result))]
    assert [r.line for r in strict] == list(result.store.lines)


# (file name, bytes, the line training names, words of its message): each file has one read-level error.
STRICT_CASES = {
    "bad json line": ("d.jsonl", b'{"prompt": "a", "completion": "b."}\n{"prompt": "c"\n', 2, "not valid JSON"),
    "latin-1 line": ("d.jsonl", b'{"prompt": "a", "completion": "b."}\n{"prompt": "Caf\xe9", "completion": "d."}\n',
                     2, "not UTF-8"),
    "ragged csv": ("d.csv", b"prompt,completion\nHi,Hello.\nHow are you,Fine,thanks\n", 3, "number of cells"),
    "cut json array": ("d.json", b'[{"prompt": "a", "completion": "b."}, {"prompt": ', 1, "not valid JSON"),
    "one json value": ("d.json", b'"just a string"', None, "not a list of examples"),
    "empty array": ("d.json", b"[]", None, "empty"),
    "unsupported": ("d.txt", b"hello", None, "Unsupported file type '.txt'"),
}


@pytest.mark.parametrize("case", sorted(STRICT_CASES))
def test_training_stops_where_the_check_reports_the_first_error(tmp_path, case):
    """The strict reader is the scan's reader in strict mode: it stops at the first error the dataset
    check lists, naming the same file and line."""
    name, data, line, words = STRICT_CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(StudioError, match=re.escape(words)) as err:
        read_rows(path)
    assert err.value.path == path and err.value.line == line
    first = next(f for f in scan(path).findings if f.severity == "error")
    assert first.file == str(path) and (first.lines[:1] or [None]) == [line]


def test_the_strict_reader_reads_through_warnings_as_json_does(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "a", "prompt": "b", "completion": "c."}\n{"prompt": "d", "completion": NaN}\n')
    rows = read_rows(path)
    assert [r.data["prompt"] for r in rows] == ["b", "d"] and math.isnan(rows[1].data["completion"])
    assert {"encoding.bom", "json.duplicate_key", "json.non_standard"} <= {f.code for f in scan(path).findings}


def test_latin1_is_read_and_reported(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_bytes(json.dumps({"instruction": "Café?", "output": "Oui."}, ensure_ascii=False).encode("latin-1") + b"\n")
    result = scan(path)
    assert result.row(0).data["instruction"] == "Café?"
    f = next(f for f in result.findings if f.code == "encoding.not_utf8")
    assert f.lines == [1] and "0xe9" in f.message


def test_fingerprint_is_sha256_of_the_bytes(tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", [alpaca(1)])
    assert fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest() == scan(path).fingerprint()


def test_a_failing_callback_is_not_blamed_on_the_file(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [alpaca(i) for i in range(10)])

    def broken(rows):
        raise RuntimeError("table model bug")

    with pytest.raises(RuntimeError, match="table model bug"):
        scan(path, on_rows=broken, chunk=3)
