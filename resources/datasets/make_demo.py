"""Writes the demo dataset: the assistant always answers in one fixed JSON shape.

The change is easy to see after a few minutes of CPU training: before, SmolLM2 answers in prose;
after, it answers ``{"answer": ..., "category": ..., "confidence": ...}``. Facts are generated from
small tables so every answer is correct. Deterministic: re-running gives the same files.

    python resources/datasets/make_demo.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Canada": "Ottawa", "Australia": "Canberra",
    "Brazil": "Brasilia", "Argentina": "Buenos Aires", "Egypt": "Cairo", "Kenya": "Nairobi", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Poland": "Warsaw", "Greece": "Athens", "Turkey": "Ankara",
    "Mexico": "Mexico City", "Peru": "Lima", "Chile": "Santiago", "Ireland": "Dublin", "Austria": "Vienna",
    "Hungary": "Budapest", "Netherlands": "Amsterdam", "Belgium": "Brussels", "Denmark": "Copenhagen",
    "Thailand": "Bangkok", "Vietnam": "Hanoi", "South Korea": "Seoul", "Nigeria": "Abuja", "Morocco": "Rabat",
    "Cuba": "Havana", "Iceland": "Reykjavik", "New Zealand": "Wellington", "Switzerland": "Bern",
}
OPPOSITES = {
    "hot": "cold", "tall": "short", "fast": "slow", "happy": "sad", "open": "closed", "early": "late",
    "light": "dark", "full": "empty", "strong": "weak", "loud": "quiet", "rich": "poor", "wet": "dry",
    "old": "young", "hard": "soft", "high": "low", "thick": "thin", "win": "lose", "push": "pull",
    "begin": "end", "above": "below", "cheap": "expensive", "clean": "dirty", "deep": "shallow",
    "friend": "enemy", "heavy": "light", "inside": "outside", "love": "hate", "near": "far",
}
COLORS = {
    "a ripe banana": "yellow", "grass": "green", "a clear daytime sky": "blue", "snow": "white", "coal": "black",
    "a ripe tomato": "red", "an orange": "orange", "a lemon": "yellow", "a carrot": "orange", "milk": "white",
    "a ripe strawberry": "red", "an emerald": "green", "a flamingo": "pink", "chocolate": "brown",
    "a blueberry": "blue", "a lime": "green", "a polar bear's fur": "white", "a raven": "black",
}
PLURALS = {
    "mouse": "mice", "child": "children", "goose": "geese", "tooth": "teeth", "foot": "feet", "man": "men",
    "woman": "women", "person": "people", "cactus": "cacti", "leaf": "leaves", "knife": "knives", "box": "boxes",
    "city": "cities", "wolf": "wolves", "sheep": "sheep", "fish": "fish", "ox": "oxen", "bus": "buses",
}
ANIMAL_LEGS = {"spider": 8, "ant": 6, "dog": 4, "chicken": 2, "snake": 0, "octopus": 8, "horse": 4,
               "bee": 6, "kangaroo": 2, "cat": 4, "crab": 10, "duck": 2}


def answer(value: object, category: str, confidence: str = "high") -> str:
    return json.dumps({"answer": value, "category": category, "confidence": confidence}, ensure_ascii=False)


def examples(rng: random.Random) -> list[dict]:
    out: list[tuple[str, str]] = []
    cap_q = ["What is the capital of {c}?", "Which city is the capital of {c}?", "Name the capital city of {c}.",
             "Tell me the capital of {c}."]
    for c, city in CAPITALS.items():
        out.append((rng.choice(cap_q).format(c=c), answer(city, "geography")))
    sums: set[tuple[int, str, int]] = set()  # distinct questions: a repeated row is a finding of its own
    while len(sums) < 50:
        sums.add((rng.randint(2, 99), rng.choice(["+", "-", "*"]), rng.randint(2, 99)))
    for a, op, b in sorted(sums):
        val = a + b if op == "+" else a - b if op == "-" else a * b
        q = rng.choice(["What is {a} {op} {b}?", "Compute {a} {op} {b}.", "Calculate {a} {op} {b} for me."])
        out.append((q.format(a=a, op=op, b=b), answer(val, "math")))
    for w, o in OPPOSITES.items():
        q = rng.choice(["What is the opposite of '{w}'?", "Give me an antonym of {w}.", "What word means the opposite of {w}?"])
        out.append((q.format(w=w), answer(o, "language")))
    for thing, color in COLORS.items():
        out.append((rng.choice(["What color is {t}?", "Which colour is {t} usually?"]).format(t=thing), answer(color, "everyday")))
    for s, p in PLURALS.items():
        out.append((rng.choice(["What is the plural of '{s}'?", "How do you say more than one {s}?"]).format(s=s), answer(p, "language")))
    for animal, legs in ANIMAL_LEGS.items():
        out.append((f"How many legs does a {animal} have?", answer(legs, "nature")))
    for km in rng.sample(range(1, 41), 30):
        out.append((f"How many meters are in {km} kilometers?", answer(km * 1000, "units")))
    for h in rng.sample(range(1, 13), 12):
        out.append((f"How many minutes are in {h} hours?", answer(h * 60, "units")))
    word_pool = ["banana", "studio", "python", "window", "garden", "river", "planet", "pencil", "rocket", "guitar",
                 "bridge", "forest", "silver", "castle", "dragon", "winter"]
    for w in word_pool:
        out.append((f"How many letters are in the word '{w}'?", answer(len(w), "language")))
    for w in word_pool[:10]:
        out.append((f"Spell '{w}' backwards.", answer(w[::-1], "language")))
    unknown = ["What will the weather be in Paris next month?", "Who will win the next football world cup?",
               "What number am I thinking of?", "What did I eat for breakfast today?",
               "What will the stock market do tomorrow?", "How many hairs are on my head?"]
    for q in unknown:
        out.append((q, answer(None, "unknown", "none")))
    rng.shuffle(out)
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in out]


def main() -> None:
    rows = examples(random.Random(7))
    n_eval = len(rows) // 10
    for name, part in (("demo_train.jsonl", rows[n_eval:]), ("demo_eval.jsonl", rows[:n_eval])):
        (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
        print(f"{name}: {len(part)} rows")


if __name__ == "__main__":
    main()
