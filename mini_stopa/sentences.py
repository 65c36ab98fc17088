"""Harvard-style sentences from a seeded template grammar (no external text source).

The sentences imitate the phonetically varied, short declaratives of the IEEE/Harvard lists
("The birch canoe slid on the smooth planks.") but are built from the word lists below, so
the corpus depends on nothing outside this file. Words are plain lower-case English without
digits or abbreviations, which every front-end reads the same way.
"""
from __future__ import annotations

import random

ADJ = [
    "old", "small", "bright", "quiet", "heavy", "narrow", "golden", "rusty", "pale", "thick",
    "smooth", "broken", "warm", "dusty", "tall", "brown", "sharp", "round", "faded", "gentle",
    "wooden", "silver", "cold", "loose", "dark", "empty", "bitter", "soft", "green", "steep",
]
NOUN = [
    "canoe", "lamp", "fence", "basket", "horse", "ribbon", "kettle", "bridge", "garden", "ladder",
    "pencil", "wagon", "candle", "jacket", "barrel", "rope", "window", "stone", "boat", "coin",
    "cabin", "feather", "bottle", "hammer", "carpet", "drum", "glove", "pillow", "tower", "wheel",
]
MASS = ["water", "sand", "bread", "smoke", "salt", "paint", "grass", "honey", "milk", "dust"]
VERB = [
    "slid", "rolled", "fell", "drifted", "leaned", "rested", "floated", "tumbled", "swung",
    "sank", "glowed", "shook", "waited", "turned", "stood",
]
PREP = ["on", "under", "near", "past", "behind", "beside", "across", "into", "over", "along"]
PLACE = [
    "harbor", "kitchen", "meadow", "station", "valley", "market", "hallway", "orchard", "shore",
    "village", "attic", "forest", "river", "square", "yard",
]
NAME = ["Anna", "Peter", "Maria", "Thomas", "Lucy", "George", "Helen", "Martin", "Clara", "Oscar"]
TVERB = ["found", "painted", "carried", "dropped", "cleaned", "sold", "mended", "packed", "lifted", "hid"]
TIME = ["at dawn", "last night", "in the spring", "before noon", "after supper", "on sunday"]
ADV = ["slowly", "gently", "twice", "quickly", "softly", "again"]

TEMPLATES = [
    lambda r: f"The {r.choice(ADJ)} {r.choice(NOUN)} {r.choice(VERB)} {r.choice(PREP)} the {r.choice(ADJ)} {r.choice(NOUN)}.",
    lambda r: f"A {r.choice(NOUN)} of {r.choice(MASS)} {r.choice(VERB)} {r.choice(PREP)} the {r.choice(PLACE)}.",
    lambda r: f"{r.choice(NAME)} {r.choice(TVERB)} the {r.choice(ADJ)} {r.choice(NOUN)} {r.choice(TIME)}.",
    lambda r: f"The {r.choice(NOUN)} {r.choice(VERB)} {r.choice(ADV)} {r.choice(PREP)} the {r.choice(ADJ)} {r.choice(PLACE)}.",
    lambda r: f"Bring the {r.choice(ADJ)} {r.choice(NOUN)} to the {r.choice(PLACE)} {r.choice(TIME)}.",
    lambda r: f"{r.choice(NAME)} kept a {r.choice(ADJ)} {r.choice(NOUN)} near the {r.choice(PLACE)}.",
]


def make_sentences(n: int, seed: int) -> list[str]:
    """`n` distinct sentences, the same list for the same `seed` on every platform.

    Uses `random.Random(seed)`, whose sequence is stable across Python versions for
    `choice` on lists; no two sentences are equal ignoring case.
    """
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        s = rng.choice(TEMPLATES)(rng)
        key = s.lower()
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out
