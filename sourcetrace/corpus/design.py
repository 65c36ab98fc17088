"""STOPA's enrollment and trial design on any labelled corpus, seeded and deterministic.

Input: utterances with a role (`train`, `enroll`, `trial`) and the known (enrolled) attacks.

- Hold-out: a known attack without any `trial` utterance gives `holdout` of its `enroll`
  utterances (rounded, at least 1, at most all but 1) to the trials, so that the known
  scenario has trials (ASVspoof 2019 LA: the training attacks appear in no evaluation file).
- Conditions (STOPA, `docs/corpus_import.md`): `co`, content overlap: enrollment utterances
  whose text is the text of some trial utterance; `nc`, no content overlap: the others. Without
  texts only `nc` exists, and then it means "overlap not known", which the summary says.
- Sizes: per condition, each requested size N that every known attack can fill (N <= its pool
  in that condition), so all known attacks have the same fingerprints; `all` (nc) is each
  attack's whole pool. Sizes that do not fit are dropped with a note.
- Sampling: each (attack, condition) pool is sorted by file, shuffled with
  `random.Random(f"{seed}/{attack}/{condition}")`, and fingerprint `<ATK>-<cond>-<N>` takes the
  first N, so smaller sets are prefixes of larger ones (STOPA reuses utterances the same way)
  and one attack's draw does not depend on another attack's.
- Trials: every trial utterance (sorted by attack, then file) against every fingerprint.

A known attack with fewer enrollment utterances than the smallest size cannot be enrolled:
under `on_error: skip` it is left out (neither enrolled nor a trial, since it is not unknown
either), with a warning; under `fail` it is an error.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from ..errors import StageError
from .manifest import Utterance

log = logging.getLogger("sourcetrace")
CO_SIZES = (1, 10, 100, 400)  # STOPA's
NC_SIZES = (1, 10, 100, 400, 1000, "all")


@dataclass
class Design:
    known: list[str]
    fingerprints: dict[str, list[Utterance]]  # `<ATK>-<cond>-<N>` -> enrollment utterances, in order
    trials: list[Utterance]
    train: list[Utterance]
    pools: dict[tuple[str, str], int]  # (attack, condition) -> utterances available
    held_out: dict[str, int]  # known attack -> enrollment utterances moved to the trials
    sizes: dict[str, list]  # condition -> sizes kept
    notes: list[str] = field(default_factory=list)


def _shuffled(utterances: list[Utterance], key: str) -> list[Utterance]:
    ordered = sorted(utterances, key=lambda u: u.file)
    random.Random(key).shuffle(ordered)
    return ordered


def _check_sizes(sizes, condition: str) -> list:
    bad = [s for s in sizes if not ((isinstance(s, int) and not isinstance(s, bool) and s >= 1)
                                    or (s == "all" and condition == "nc"))]
    if bad or not sizes or len(set(sizes)) != len(sizes):
        raise StageError(f"{condition} sizes must be distinct integers >= 1{' or all' if condition == 'nc' else ''}, "
                         f"not {list(sizes)!r}")
    return sorted(sizes, key=lambda s: (s == "all", s if s != "all" else 0))


def build(utterances: list[Utterance], known: list[str], *, seed: int = 0, co_sizes=CO_SIZES,
          nc_sizes=NC_SIZES, holdout: float = 0.5, on_error: str = "fail") -> Design:
    """The fingerprints and trials of the STOPA design (module docstring)."""
    co_sizes, nc_sizes = _check_sizes(co_sizes, "co"), _check_sizes(nc_sizes, "nc")
    if not 0 < holdout < 1:
        raise StageError(f"holdout must be a fraction between 0 and 1, not {holdout!r}")
    notes: list[str] = []
    by_role: dict[str, list[Utterance]] = {"train": [], "enroll": [], "trial": []}
    for u in utterances:
        if u.role in by_role:
            by_role[u.role].append(u)
    enroll = {a: [u for u in by_role["enroll"] if u.attack == a] for a in known}
    smallest = min([s for s in (*co_sizes, *nc_sizes) if s != "all"] or [1])  # "all" needs one
    kept = []
    for attack in known:
        has_trials = any(u.attack == attack for u in by_role["trial"])
        need = smallest if has_trials else smallest + 1  # one more to hold out as a trial
        if len(enroll[attack]) < need:
            message = (f"known attack {attack} has {len(enroll[attack])} enrollment utterance(s); it needs {need} "
                       f"(the smallest enrollment size{'' if has_trials else ', plus one held out as a trial'})")
            if on_error == "fail":
                raise StageError(f"{message}; give it more, drop it from the known attacks, or use --on-error skip")
            log.warning("%s: left out (neither enrolled nor a trial)", message)
            notes.append(f"{attack}: left out, {message}")
            continue
        kept.append(attack)
    if not kept:
        raise StageError("no known attack can be enrolled")
    skipped = set(known) - set(kept)
    trials = [u for u in by_role["trial"] if u.attack not in skipped]
    held_out = {}
    for attack in kept:
        if any(u.attack == attack for u in trials):
            continue
        pool = _shuffled(enroll[attack], f"{seed}/{attack}/holdout")
        n = min(max(1, round(holdout * len(pool))), len(pool) - 1)
        trials += pool[:n]
        enroll[attack] = pool[n:]
        held_out[attack] = n
    if held_out:
        notes.append(f"no trial utterances of {', '.join(held_out)}: {holdout:g} of each one's enrollment "
                     f"utterances held out as trials (seeded)")
    trials.sort(key=lambda u: (u.attack, u.file))
    has_text = all(u.text is not None for u in [*trials, *(u for a in kept for u in enroll[a])])
    trial_texts = {u.text for u in trials}
    pools: dict[str, dict[str, list[Utterance]]] = {"co": {}, "nc": {}}
    for attack in kept:
        if has_text:
            pools["co"][attack] = [u for u in enroll[attack] if u.text in trial_texts]
            pools["nc"][attack] = [u for u in enroll[attack] if u.text not in trial_texts]
        else:
            pools["nc"][attack] = enroll[attack]
    if not has_text:
        notes.append("no texts: only the nc condition, and there it means content overlap not known "
                     "(co needs a text column)")
    kept_sizes: dict[str, list] = {}
    fingerprints: dict[str, list[Utterance]] = {}
    for condition, requested in (("co", co_sizes), ("nc", nc_sizes)):
        if not pools[condition]:
            continue
        fewest = min(len(p) for p in pools[condition].values())
        sizes = [s for s in requested if (s == "all" and fewest >= 1) or (s != "all" and s <= fewest)]
        dropped = [s for s in requested if s not in sizes]
        if dropped:
            poorest = min(pools[condition], key=lambda a: len(pools[condition][a]))
            notes.append(f"{condition}: sizes {', '.join(map(str, dropped))} dropped: {poorest} has "
                         f"{fewest} {condition} enrollment utterance(s)")
        kept_sizes[condition] = sizes
        for attack in kept:
            order = _shuffled(pools[condition][attack], f"{seed}/{attack}/{condition}")
            for size in sizes:
                fingerprints[f"{attack}-{condition}-{size}"] = order if size == "all" else order[:size]
    if not fingerprints:
        raise StageError("no fingerprint fits: every known attack needs enrollment utterances")
    counts = {(a, c): len(p[a]) for c, p in pools.items() for a in p}
    return Design(kept, dict(sorted(fingerprints.items(), key=lambda kv: _order(kv[0]))), trials,
                  by_role["train"], counts, held_out, kept_sizes, notes)


def _order(name: str):
    attack, condition, size = name.rsplit("-", 2)
    return attack, condition, size == "all", int(size) if size != "all" else 0
