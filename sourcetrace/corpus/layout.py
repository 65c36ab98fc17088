"""Write a `Design` in the toolkit's protocol layout, with a config and a summary, all or nothing.

`DIR/protocols_fingerprint_extraction/<ATK>-<cond>-<N>.txt`: header `SPEAKER FileName TEXT_ID ATK`
(the reference reads column 1 as the file, column 3 as the attack); `TEXT_ID` numbers the
distinct texts (`-` without texts), `SPEAKER` is `-` without speakers.
`DIR/protocols_trials_extended/<fingerprint>_trials.txt`: `AbstractModel FileName`, the
`AcousticModel` / `VocoderModel` names when the manifest has them, `ATK`, `IsTargetATK` and one
`IsTarget*` column per label the manifest has, nothing for the others.
`DIR/protocols_train/train.txt` (when there are training utterances): `SPEAKER FILE - ATTACK
LABEL` with a header line, LABEL `spoof`.
`DIR/<name>.conf`: the base config with the corpus's paths, audio templates
`{database_path}/{file}` (the audio stays where it is) and known attacks.
`DIR/attacks.tsv`, `DIR/summary.txt`: what was imported (see `summary`).

Everything is written into a temporary folder beside DIR and renamed into place at the end,
so a failed import leaves nothing.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import StageError
from .design import Design
from .manifest import LABELS

ENROLL_DIR, TRIAL_DIR, TRAIN_DIR = "protocols_fingerprint_extraction", "protocols_trials_extended", "protocols_train"
TEMPLATE = "{database_path}/{file}"


def trial_header(labels: list[str]) -> list[str]:
    """The trial files' columns for the labels (`am`, `vm`, ...) the manifest has."""
    names = [LABELS[k] for k in ("am", "vm") if k in labels]
    return ["AbstractModel", "FileName", *names, "ATK", "IsTargetATK", *(f"IsTarget{LABELS[k]}" for k in LABELS
                                                                          if k in labels)]


def _trial_lines(fingerprint: str, design: Design, label_of: dict, labels: list[str]) -> list[str]:
    attack = fingerprint.rsplit("-", 2)[0]
    own = label_of[attack]
    lines = [" ".join(trial_header(labels))]
    for u in design.trials:
        theirs = label_of[u.attack]
        cells = [fingerprint, u.file, *(theirs[k] for k in ("am", "vm") if k in labels), u.attack,
                 str(u.attack == attack), *(str(theirs[k] == own[k]) for k in LABELS if k in labels)]
        lines.append(" ".join(cells))
    return lines


def write(out: Path, design: Design, *, labels: list[str], label_of: dict, audio_root: Path, base_config: dict,
          name: str, summary_text: str, attacks_tsv: str, force: bool = False) -> Path:
    """Write the layout into `out` (module docstring); returns the config's path."""
    out = Path(out).absolute()
    if out.exists() and any(out.iterdir()) and not force:
        raise StageError(f"{out}: exists and is not empty; choose another --out or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        texts = {t: f"T{i + 1:05d}" for i, t in enumerate(sorted({u.text for us in design.fingerprints.values()
                                                                  for u in us if u.text is not None}))}
        (tmp / ENROLL_DIR).mkdir()
        (tmp / TRIAL_DIR).mkdir()
        for fingerprint, utts in design.fingerprints.items():
            rows = ["SPEAKER FileName TEXT_ID ATK"] + [
                f"{u.speaker or '-'} {u.file} {texts.get(u.text, '-')} {u.attack}" for u in utts]
            (tmp / ENROLL_DIR / f"{fingerprint}.txt").write_text("\n".join(rows) + "\n")
            (tmp / TRIAL_DIR / f"{fingerprint}_trials.txt").write_text(
                "\n".join(_trial_lines(fingerprint, design, label_of, labels)) + "\n")
        config = dict(base_config)
        config.update({
            "database_path": str(Path(audio_root).absolute()),
            "enroll_protocol_dir": str(out / ENROLL_DIR),
            "trial_protocol_dir": str(out / TRIAL_DIR),
            "enroll_audio": TEMPLATE, "trial_audio": TEMPLATE, "train_audio": TEMPLATE,
            "known_attacks": list(design.known),
            "reference_trial_file": next(iter(design.fingerprints)),
        })
        if design.train:
            (tmp / TRAIN_DIR).mkdir()
            rows = ["SPEAKER FILE - ATTACK LABEL"] + [f"{u.speaker or '-'} {u.file} - {u.attack} spoof"
                                                      for u in design.train]
            (tmp / TRAIN_DIR / "train.txt").write_text("\n".join(rows) + "\n")
            config["train_protocol"] = str(out / TRAIN_DIR / "train.txt")
        (tmp / f"{name}.conf").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "attacks.tsv").write_text(attacks_tsv)
        (tmp / "summary.txt").write_text(summary_text)
        os.chmod(tmp, 0o777 & ~_umask())
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out / f"{name}.conf"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
