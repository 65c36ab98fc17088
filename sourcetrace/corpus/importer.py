"""From a preset's utterances to the written layout: checks, attack ids, design, summary.

Checks, before anything is written: every audio file exists under the audio root (the
missing ones listed, the first 20 and a count), no audio path is listed twice (both lines
named), each attack has one value of each label (an acoustic model, a vocoder, ...; the first
row that disagrees is named), labels without white space (replaced by `_`, said once).

Attack ids: the protocols name a fingerprint `<ATK>-<cond>-<N>`, so an attack id can hold
neither `-`, `/` nor white space. When every attack name is such an id (`A01`, `AA01`,
`tacotron2_ljspeech`) it is kept; otherwise every attack gets an id `S01`, `S02`, ... in the
order of its name, and `attacks.tsv` maps ids to names.
"""
from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

from ..errors import StageError
from . import design as design_mod
from . import layout
from .manifest import LABELS, Utterance

log = logging.getLogger("sourcetrace")
_SAFE_ID = re.compile(r"[A-Za-z0-9_.+]+")
MISSING_SHOWN = 20


def check_unique(utterances: list[Utterance]) -> None:
    """No audio path twice among the evaluation utterances, nor twice among the training ones (one
    utterance may be both, when fingerprints are enrolled from the training split)."""
    for group in ([u for u in utterances if u.role != "train"], [u for u in utterances if u.role == "train"]):
        seen: dict[str, str] = {}
        for u in group:
            if u.file in seen:
                raise StageError(f"{u.where}: duplicate audio path {u.file!r} (first at {seen[u.file]})")
            seen[u.file] = u.where


def check_audio(utterances: list[Utterance], root: Path) -> None:
    missing = [u for u in utterances if not (root / u.file).is_file()]
    if missing:
        shown = "\n".join(f"  {u.where}: {root / u.file}" for u in missing[:MISSING_SHOWN])
        more = f"\n  ... and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
        raise StageError(f"{root}: {len(missing)} audio file(s) of the manifest not found (is --audio-root "
                         f"right?):\n{shown}{more}")


def labels_of_attacks(utterances: list[Utterance], labels: list[str]) -> dict[str, dict[str, str]]:
    """{attack: {label: value}}; an attack whose rows disagree on a label is an error."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    for u in utterances:
        own = found.setdefault(u.attack, {})
        for k in labels:
            value = u.labels[k]
            if k in own and own[k][0] != value:
                raise StageError(f"{u.where}: attack {u.attack!r} has {LABELS[k]} {value!r} here but "
                                 f"{own[k][0]!r} at {own[k][1]}; one value per attack is expected")
            own.setdefault(k, (value, u.where))
    return {a: {k: v[0] for k, v in own.items()} for a, own in found.items()}


def attack_ids(names: list[str]) -> dict[str, str]:
    """Protocol-safe id of every attack name (module docstring)."""
    names = sorted(set(names))
    if all(_SAFE_ID.fullmatch(n) for n in names):
        return {n: n for n in names}
    width = max(2, len(str(len(names))))
    return {n: f"S{i + 1:0{width}d}" for i, n in enumerate(names)}


def _clean(value: str) -> str:
    return re.sub(r"\s+", "_", value.strip())


def summary(design, names: dict[str, str], label_of: dict, labels: list[str], title: str, options: dict) -> str:
    """The import summary: one row per attack, then conditions, sizes and notes."""
    short = {"am": "AM", "vm": "VM", "am_archit": "AM arch.", "vm_archit": "VM arch."}
    trials = {}
    for u in design.trials:
        trials[u.attack] = trials.get(u.attack, 0) + 1
    train = {}
    for u in design.train:
        train[u.attack] = train.get(u.attack, 0) + 1
    header = ["ATK", "name", "role", *(short[k] for k in labels), "train", "enroll co", "enroll nc", "held out",
              "trials"]
    rows = []
    for name, atk in sorted(names.items(), key=lambda kv: kv[1]):
        if atk not in trials and atk not in design.known and atk not in train:
            continue
        role = "known" if atk in design.known else ("unknown" if atk in trials else "train only")
        rows.append([atk, name, role, *(label_of.get(atk, {}).get(k, "") for k in labels), str(train.get(atk, 0)),
                     str(design.pools.get((atk, "co"), "-")), str(design.pools.get((atk, "nc"), "-")),
                     str(design.held_out.get(atk, "-")), str(trials.get(atk, 0))])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    text = [title, "", *("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]), ""]
    n_fp = len(design.fingerprints)
    text += [f"known attacks: {len(design.known)} ({', '.join(design.known)}); unknown attacks: "
             f"{sum(1 for a in trials if a not in design.known)}",
             f"trial utterances: {len(design.trials)}; fingerprints: {n_fp}; trial rows: {n_fp * len(design.trials)}",
             *(f"condition {c}: sizes {', '.join(map(str, s))}" for c, s in design.sizes.items()),
             f"labels: ATK{''.join(', ' + LABELS[k] for k in labels)}"
             + ("" if {"am", "vm"} <= set(labels) else
                f" (absent: {', '.join(LABELS[k] for k in ('am', 'vm') if k not in labels)}; stages 4-5 and the "
                "report leave them out)"),
             "options: " + ", ".join(f"{k}={v}" for k, v in options.items()),
             *(f"note: {n}" for n in design.notes)]
    return "\n".join(text) + "\n"


def import_corpus(utterances: list[Utterance], known_names: list[str] | None, *, labels: list[str], audio_root: Path,
                  out: Path, name: str, base_config: dict, title: str, options: dict, seed: int = 0,
                  co_sizes=design_mod.CO_SIZES, nc_sizes=design_mod.NC_SIZES, holdout: float = 0.5,
                  on_error: str = "fail", force: bool = False, notes: list[str] = ()) -> tuple[Path, str]:
    """Check, design and write (module docstring); returns the config's path and the summary."""
    used = [u for u in utterances if u.role is not None]
    if not used:
        raise StageError("no utterance has a role (train, enrollment or trial): check the split names")
    check_unique(used)
    check_audio(list({u.file: u for u in used}.values()), Path(audio_root))
    cleaned = [k for k in labels if any(re.search(r"\s", u.labels[k]) for u in used)]
    if cleaned:
        log.warning("white space in %s values replaced by _", ", ".join(LABELS[k] for k in cleaned))
        used = [replace(u, labels={k: _clean(v) for k, v in u.labels.items()}) for u in used]
    ids = attack_ids([u.attack for u in used])
    if any(k != v for k, v in ids.items()):
        notes = [*notes, "attack names are not protocol ids (they hold -, / or the like): ids S01... in attacks.tsv"]
    known = sorted({u.attack for u in used if u.role == "train"}) if known_names is None else list(known_names)
    absent = [a for a in known if a not in ids]
    if absent:
        raise StageError(f"known attack(s) {', '.join(absent)} have no utterance in the manifest")
    used = [replace(u, attack=ids[u.attack]) for u in used]
    label_of = labels_of_attacks(used, labels)
    design = design_mod.build(used, [ids[a] for a in known], seed=seed, co_sizes=co_sizes, nc_sizes=nc_sizes,
                              holdout=holdout, on_error=on_error)
    design.notes[:0] = list(notes)
    text = summary(design, ids, label_of, labels, title, options)
    attacks_tsv = "ATK\tname\n" + "".join(f"{i}\t{n}\n" for n, i in sorted(ids.items(), key=lambda kv: kv[1]))
    config = layout.write(out, design, labels=labels, label_of=label_of, audio_root=audio_root,
                          base_config=base_config, name=name, summary_text=text, attacks_tsv=attacks_tsv, force=force)
    return config, text
