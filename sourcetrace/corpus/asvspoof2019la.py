"""Preset `asvspoof2019la`: the ASVspoof 2019 LA countermeasure protocol files.

Format (the challenge's evaluation plan and every public loader of it): no header, five
space-separated columns `SPEAKER FILE - SYSTEM KEY`; SYSTEM is `A01`..`A19` (`-` for bona
fide), KEY `spoof` or `bonafide`. Bona fide rows are dropped. The split comes from the file
name (`ASVspoof2019.LA.cm.train.trn.txt`, `....dev.trl.txt`, `....eval.trl.txt`) and the audio
is `<LA root>/ASVspoof2019_LA_<split>/flac/<FILE>.flac`; the LA root defaults to the folder
above the protocols' folder.

Known attacks: the training attacks A01-A06 (enrolled from `dev`; the evaluation split has
none of them, so half of each one's dev utterances is held out as its trials); unknown: A07-A19.
Labels: `asvspoof2019_la_attacks.tsv` beside this file (Wang et al., 2020): A16 and A19 are A04's
and A06's systems, so their trials are acoustic-model and vocoder targets of A04 / A06.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import StageError
from .manifest import Utterance, read_table

TABLE = Path(__file__).with_name("asvspoof2019_la_attacks.tsv")
KNOWN = ["A01", "A02", "A03", "A04", "A05", "A06"]
ROLES = {"train": "train", "dev": "enroll", "eval": "trial"}
DEFAULTS = {"known": KNOWN}
COLUMNS = ["SPEAKER", "FILE", "-", "SYSTEM", "KEY"]
LABEL_COLUMNS = {"am": "AcousticModel", "vm": "VocoderModel", "am_archit": "AmArchit", "vm_archit": "VmArchit"}


def attack_table() -> dict[str, dict[str, str]]:
    """{attack: {am, vm, am_archit, vm_archit, note}} from the repository's table."""
    lines = [line for line in TABLE.read_text().splitlines() if line and not line.startswith("#")]
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    return {r["ATK"]: {**{k: r[c] for k, c in LABEL_COLUMNS.items()}, "note": r["Note"]} for r in rows}


def split_of(path: Path) -> str:
    parts = Path(path).name.split(".")
    found = [s for s in ROLES if s in parts]
    if len(found) != 1:
        raise StageError(f"{path}: cannot tell the split from the file name (expected ASVspoof2019.LA.cm."
                         f"<train|dev|eval>.<trn|trl>.txt)")
    return found[0]


def load(manifests: list[Path], opts: dict):
    """(utterances, known attacks, labels present)."""
    table = attack_table()
    found = []
    for path in map(Path, manifests):
        split = split_of(path)
        for line, cells in read_table(path, "space", names=COLUMNS).rows:
            speaker, file, _, system, key = cells
            where = f"{path}:{line}"
            if key == "bonafide":
                continue
            if key != "spoof" or system not in table:
                raise StageError(f"{where}: expected SPEAKER FILE - SYSTEM KEY with SYSTEM A01..A19 and KEY "
                                 f"spoof or bonafide, found {' '.join(cells)!r}")
            labels = {k: table[system][k] for k in LABEL_COLUMNS}
            found.append(Utterance(f"ASVspoof2019_LA_{split}/flac/{file}{opts.get('suffix') or '.flac'}", system,
                                   where, ROLES[split], speaker, None, labels))
    return found, opts.get("known") or KNOWN, list(LABEL_COLUMNS)
