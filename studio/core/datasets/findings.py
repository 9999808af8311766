"""Validation findings: stable codes, one grouped finding per (file, code), a message saying what to do.

Codes are part of the public contract (the GUI filters on them, the CLI prints them, tests assert
them), so they live in one catalogue with their severity. A dataset with 10k duplicate rows gives one
``dup.exact`` finding listing 10k lines, not 10k findings: a person reads findings, a program reads
the line lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]

# code -> (severity, what is wrong, what to do). ``{n}`` is the number of places.
CATALOGUE: dict[str, tuple[Severity, str, str]] = {
    "file.missing": ("error", "File not found", "Check the path or pick the file again."),
    "file.is_directory": ("error", "This is a folder, not a dataset file", "Pick a .json, .jsonl, .csv or .parquet file."),
    "file.unsupported_type": ("error", "Unsupported file type", "Use .json, .jsonl, .csv or .parquet."),
    "file.unreadable": ("error", "The file cannot be opened", "Check that it exists and that you may read it."),
    "file.empty": ("error", "The file holds no examples", "Pick the right file or add examples to it."),
    "file.binary": ("error", "This looks like a binary file, not text", "Export the dataset as JSON Lines (.jsonl)."),
    "file.changed": ("warning", "The file changed while it was being read", "Wait until whatever writes it is done, then check it again."),
    "encoding.not_utf8": ("error", "The file is not UTF-8 text", "Re-save it as UTF-8, or use the cleaned copy (always UTF-8)."),
    "encoding.nul_bytes": ("error", "{n} line(s) contain NUL bytes, which text never holds", "Remove them (they were left out while reading); a damaged or half-written file often has runs of them."),
    "encoding.bom": ("warning", "The file starts with a byte-order mark (BOM)", "Some tools choke on it; the cleaned copy drops it."),
    "json.unparseable": ("error", "{n} place(s) are not valid JSON", "Fix or delete these lines."),
    "json.too_deep": ("error", "{n} value(s) are nested too deeply to read", "Flatten these rows; examples need only a few levels."),
    "json.not_a_list": ("error", "The JSON document is not a list of examples", "Use a top-level array of objects, or JSON Lines."),
    "json.ambiguous_lists": ("error", "The JSON object holds several lists, so it is unclear which are the examples", "Keep one list, or split them into separate files."),
    "json.non_standard": ("warning", "{n} row(s) use NaN or Infinity, which are not standard JSON", "Replace them with numbers or null; other tools will refuse these rows."),
    "json.duplicate_key": ("warning", "{n} row(s) repeat a key; only the last value is used", "Remove the duplicate keys."),
    "csv.unparseable": ("error", "The CSV cannot be read past this point", "Check the quoting near this line."),
    "csv.ragged": ("error", "{n} CSV row(s) have a different number of cells than the header", "Fix the separators or quoting on these lines."),
    "parquet.unreadable": ("error", "This is not a readable Parquet file (it may be truncated)", "Export it again, or use JSON Lines."),
    "row.not_object": ("error", "{n} row(s) are not an object with named fields", "Each example must be an object such as {\"prompt\": …, \"completion\": …}."),
    "format.unknown": ("error", "{n} row(s) match no known format", "Map their columns to prompt/answer in the column-mapping dialog, or rename the fields."),
    "format.mixed": ("warning", "The dataset mixes formats", "This trains, but check that the minority rows are meant to be here."),
    "format.mixed_pairs": ("error", "{n} row(s) differ in kind from the rest: the dataset mixes preference pairs with single-answer rows", "A run trains on one kind (pairs for preference tuning, single answers for fine-tuning): move these rows to a file of their own."),
    "field.missing": ("error", "{n} row(s) lack a required field", "Add the field or delete these rows."),
    "field.empty": ("warning", "{n} row(s) have an empty or null prompt field", "Fill it in or delete these rows."),
    "field.wrong_type": ("error", "{n} row(s) have a field of the wrong type", "Make these fields text (strings) or lists of turns as the format needs."),
    "answer.empty": ("error", "{n} row(s) have an empty answer, so there is nothing to learn", "Write the answer or drop these rows (cleaned copy: drop empty answers)."),
    "chat.unknown_role": ("error", "{n} conversation(s) use an unknown role", "Use system/user/assistant (or ShareGPT's system/human/gpt)."),
    "chat.role_order": ("warning", "{n} conversation(s) have roles out of order", "Put the system turn first and start with the user."),
    "chat.consecutive_role": ("warning", "{n} conversation(s) have the same role twice in a row", "Merge the turns or insert the missing one; many chat templates refuse this."),
    "chat.no_assistant": ("error", "{n} conversation(s) have no assistant turn, so there is nothing to learn", "Add the answer or delete these rows."),
    "chat.last_not_assistant": ("warning", "{n} conversation(s) end with a turn that is not the assistant's", "The last turn trains nothing; end each conversation with the answer."),
    "chat.empty_turn": ("warning", "{n} conversation(s) contain an empty turn", "Fill in or remove the empty turns."),
    "pair.prompt_mismatch": ("error", "{n} pair(s) have chosen and rejected conversations that differ before the answer", "Repeat the same prompt turns on both sides; only the assistant's answer at the end should differ."),
    "pair.empty_side": ("error", "{n} pair(s) have an empty chosen or rejected answer", "Write the missing answer or drop these pairs; a pair needs two answers to compare."),
    "pair.identical": ("error", "{n} pair(s) have the same chosen and rejected answer, so there is nothing to prefer", "Replace the rejected answer with a worse one, or drop these pairs."),
    "pair.prompt_in_answer": ("warning", "{n} pair(s) repeat the whole prompt inside an answer", "The prompt is given separately; check that the answers were not saved with the prompt pasted in front."),
    "pair.length_bias": ("warning", "Chosen answers are systematically longer than rejected ones", "The model can learn that longer wins instead of better wins; add pairs whose chosen answer is the shorter one, or trim the padding."),
    "text.invalid_unicode": ("error", "{n} row(s) contain invalid Unicode (a lone surrogate) that no tokenizer can encode", "Fix or remove these characters; a JSON escape such as \\ud800 without its pair makes one."),
    "text.special_tokens": ("warning", "{n} row(s) contain the model's special tokens or chat markers as text", "The model would read them as real turn boundaries; remove or reword them unless that is intended."),
    "text.control_chars": ("warning", "{n} row(s) contain invisible control characters", "Remove them; they are usually copy-paste accidents."),
    "dup.exact": ("warning", "{n} row(s) repeat an earlier row exactly", "Drop them (cleaned copy: drop exact duplicates); repeats weigh those examples more."),
    "dup.normalized": ("warning", "{n} row(s) repeat an earlier row apart from case or spacing", "Check whether they are meant as separate examples."),
    "leak.train_eval": ("warning", "{n} training prompt(s) also appear in the eval set", "Remove them from one side, or the eval loss will look better than it is."),
    "length.outlier": ("warning", "{n} row(s) are much longer or shorter than the rest (beyond 2σ and over twice or under half the median)", "Check them for pasted junk or cut-off text."),
    "style.trailing_whitespace": ("warning", "Answers mix trailing whitespace: {n} row(s) differ from the rest", "The model learns the habit; strip whitespace (cleaned copy)."),
    "style.ending_punctuation": ("warning", "Answers mix ending punctuation: {n} row(s) differ from the rest", "Make the endings consistent if that was not intended."),
    "tokens.truncated": ("warning", "{n} row(s) are longer than the max length and will be cut", "Raise the max length or shorten these rows."),
    "tokens.no_trained_tokens": ("error", "{n} row(s) lose the whole answer to truncation and would teach nothing", "Raise the max length, shorten the prompts, or drop these rows."),
    "pair.answer_cut": ("warning", "{n} pair(s) have an answer cut at the max length", "Raise the max length or shorten these pairs; the cut part of the answer is not compared."),
    "pair.answer_lost": ("error", "{n} pair(s) lose a whole answer to truncation, so the pair compares nothing", "Raise the max length, shorten the prompts, or drop these pairs."),
    "model.no_chat_template": ("error", "The model has no chat template (a base model)", "Pick the chat format it should learn (ChatML, Llama-3, Gemma, Mistral or Alpaca/plain) in Configure, or with --template."),
    "model.stop_not_trained": ("warning", "The end of an answer carries no loss, so the model never learns to stop", "Use a chat template whose assistant turn ends with an end-of-turn token."),
    "model.stop_not_eos": ("warning", "Answers end with a token generation does not stop on", "Pick a template whose turns end with the model's eos token, or the trained model may ramble until the token limit."),
    "tokens.template_error": ("error", "{n} row(s) cannot be rendered with the model's chat template", "Fix the conversation structure the template complains about."),
}

# A file with one of these yields no rows: the CLI exits 2 for it.
FATAL_CODES = frozenset(
    {
        "file.missing", "file.is_directory", "file.unsupported_type", "file.unreadable", "file.empty",
        "file.binary", "json.not_a_list", "json.ambiguous_lists", "parquet.unreadable",
    }
)

MAX_NOTES = 20


@dataclass
class Finding:
    """One problem kind in one file, with every place it occurs.

    ``lines`` are 1-based file lines (JSONL, CSV), element indices (JSON arrays) or 1-based row
    numbers (Parquet); ``rows`` are 0-based indices into the scanned dataset, for the GUI to jump
    to. ``notes`` describe the first few places in detail (column, snippet, which row repeats).
    """

    severity: Severity
    code: str
    message: str
    file: str
    lines: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return max(len(self.lines), len(self.rows), 1)

    def to_dict(self) -> dict:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "lines": list(self.lines),
            "rows": list(self.rows),
            "notes": list(self.notes),
        }


_SINGULAR = {"have": "has", "are": "is", "repeat": "repeats", "lose": "loses", "match": "matches", "use": "uses",
             "lack": "lacks", "contain": "contains", "end": "ends", "differ": "differs", "appear": "appears"}


def _number(text: str, count: int) -> str:
    """'3 row(s) have' → '3 rows have' / '1 row has'."""
    if count != 1:
        return text.replace("(s)", "s")
    head, sep, tail = text.partition("(s) ")
    if not sep:
        return text.replace("(s)", "")
    words = tail.split(" ")
    k = 1 if words[0] == "also" else 0
    words[k] = _SINGULAR.get(words[k], words[k])
    return (head + " " + " ".join(words)).replace("(s)", "")


def describe(code: str, count: int, first_note: str | None = None) -> str:
    _severity, what, todo = CATALOGUE[code]
    text = _number(what.format(n=count), count)
    if first_note:
        text += f" ({'first: ' if count > 1 else ''}{first_note})"
    return f"{text}. {todo}"


class FindingSink:
    """Collects problems as they are met and groups them by (file, code)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], Finding] = {}
        self._extra: dict[tuple[str, str], str] = {}

    def add(self, code: str, file: str, *, line: int | None = None, row: int | None = None,
            note: str | None = None) -> None:
        key = (file, code)
        finding = self._groups.get(key)
        if finding is None:
            severity = CATALOGUE[code][0]
            finding = self._groups[key] = Finding(severity=severity, code=code, message="", file=file)
        if line is not None:
            finding.lines.append(line)
        if row is not None:
            finding.rows.append(row)
        if note and len(finding.notes) < MAX_NOTES:
            finding.notes.append(note)

    def add_many(self, code: str, file: str, lines: list[int], rows: list[int], notes: list[str] | None = None,
                 extra: str | None = None) -> None:
        """A whole group at once (dataset-level checks); ``extra`` is appended to the message."""
        if not lines and not rows:
            return
        for n in notes or []:
            self.add(code, file, note=n)
        self.add(code, file)
        finding = self._groups[(file, code)]
        finding.lines.extend(lines)
        finding.rows.extend(rows)
        if extra:
            self._extra[(file, code)] = extra

    def has(self, file: str, code: str) -> bool:
        return (file, code) in self._groups

    def has_file(self, file: str) -> bool:
        return any(f == file for f, _ in self._groups)

    def findings(self) -> list[Finding]:
        """Errors first, then warnings, each in catalogue order; messages filled in."""
        order = {c: i for i, c in enumerate(CATALOGUE)}
        out = sorted(self._groups.values(), key=lambda f: (f.severity != "error", order[f.code], f.file))
        for f in out:
            # Lines and rows grow together within one file, so sorting both keeps them paired.
            f.lines.sort()
            f.rows.sort()
            f.message = describe(f.code, f.count, f.notes[0] if f.notes else None)
            extra = self._extra.get((f.file, f.code))
            if extra:
                f.message += f" {extra}"
        return out
