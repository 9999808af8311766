"""Writes the demo preference dataset: the same questions and JSON answers as the demo dataset, as pairs.

Each row is ``{"prompt": question, "chosen": the correct answer in the fixed JSON shape, "rejected":
a worse one}``. The worse answers take turns between five kinds, so no single tell separates them
from the chosen ones: a wrong value in the right shape, a short prose answer, a rambling unsure
one, the right JSON with chatter after it, and the JSON with fields missing. Some are shorter than
the chosen answer and some longer, so the pairs carry no length bias (the check warns on one) and
the preference is about the shape and the facts. Deterministic: re-running gives the same files.

    python resources/datasets/make_demo_preference.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from make_demo import examples

HERE = Path(__file__).parent
TRAIN_PAIRS = 120
EVAL_PAIRS = 12
HEDGES = ["Hmm, I am not completely sure about this one, so please take it with a grain of salt.",
          "Good question! Let me think about it for a second before I say anything definite.",
          "Well, that depends a little on how you look at it, to be honest with you."]
CHATTER = ["Let me know if you need anything else!", "I hope that this helps you out.",
           "Happy to explain more if you ask."]


def _wrong_value(answer: dict, others: list[dict]) -> object | None:
    """Another row's answer of the same category, so the wrong value looks plausible."""
    for other in others:
        if other["category"] == answer["category"] and other["answer"] != answer["answer"]:
            return other["answer"]
    return None


def rejected(kind: int, answer: dict, others: list[dict]) -> str:
    value = answer["answer"]
    shown = "I don't know" if value is None else value
    if kind == 0:
        wrong = _wrong_value(answer, others)
        if wrong is not None:
            return json.dumps({**answer, "answer": wrong}, ensure_ascii=False)
        kind = 1
    if kind == 1:
        return f"It is {shown}."
    if kind == 2:
        return f"{HEDGES[len(str(shown)) % len(HEDGES)]} Maybe {shown}? Or not."
    if kind == 3:
        return json.dumps(answer, ensure_ascii=False) + " " + CHATTER[len(str(shown)) % len(CHATTER)]
    return json.dumps({"answer": value}, ensure_ascii=False)


def pairs(rng: random.Random) -> list[dict]:
    rows = examples(rng)[: TRAIN_PAIRS + EVAL_PAIRS]
    parsed = [(r["messages"][0]["content"], json.loads(r["messages"][1]["content"])) for r in rows]
    out = []
    for k, (question, answer) in enumerate(parsed):
        others = [a for _, a in parsed[k + 1:] + parsed[:k]]
        chosen = json.dumps(answer, ensure_ascii=False)
        out.append({"prompt": question, "chosen": chosen, "rejected": rejected(k % 5, answer, others)})
    return out


def main() -> None:
    rows = pairs(random.Random(7))
    for name, part in (("demo_pref_train.jsonl", rows[:TRAIN_PAIRS]), ("demo_pref_eval.jsonl", rows[TRAIN_PAIRS:])):
        (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
        chosen = sum(len(r["chosen"]) for r in part) / len(part)
        worse = sum(len(r["rejected"]) for r in part) / len(part)
        longer = sum(len(r["chosen"]) > len(r["rejected"]) for r in part) / len(part)
        print(f"{name}: {len(part)} pairs, mean chosen {chosen:.0f} / rejected {worse:.0f} characters, "
              f"chosen longer in {longer:.0%}")


if __name__ == "__main__":
    main()
