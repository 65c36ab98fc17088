"""Stage records, as DVC's lock file: what produced each output, and whether it still holds.

`<output_dir>/<system>_records/stage<N>.json` holds:

- `params`: the stage's config values (its declared keys, less those that only decide how
  the work is done) and the identities of the files it read that no stage wrote: SHA-256 of
  protocols and checkpoint, size and modification time of audio (as `make`);
- `upstream`: the digest of each upstream record it read;
- `outputs`: size and modification time of every file it wrote; `skipped`: how many
  utterances it left out and the digest of their rows in the skip manifest;
- `world_size`: how many processes ran it (not part of the identity).

A stage is *current* when its record exists, its params equal what the config and inputs
give now, its outputs and skip rows are as recorded, and every upstream stage is current
and still the one it read: transitively, so a change anywhere makes everything below it
out of date. A record is replaced only together with its outputs (`commit`).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .registry import STAGES, Stage
from .results import Skip
from .store import Paths, remove_tree, write_text
from .testhooks import kill_point
from .store.skips import manifest_text, read_skips, skips_digest, write_manifest

# how the work is done, where it goes, and where inputs are found: the inputs themselves are
# identified by content (protocols, checkpoint) or by size and time (audio)
NOT_IDENTITY = {"system", "output_dir", "device", "num_workers", "chunk_size", "model_path", "database_path",
                "enroll_protocol_dir", "trial_protocol_dir", "enroll_audio", "trial_audio", "train_protocol",
                "dev_protocol", "train_audio"}
_digests: dict[tuple, str] = {}
STAGED_RECORD = ".record.json"
NOT_RUN = "no record of it"
STAGED_MANIFEST = ".skipped.csv"


def file_digest(path: Path) -> str:
    """SHA-256 of a file, computed once per process for a given size and mtime."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        with open(path, "rb") as handle:
            _digests[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _digests[key]


def stat_identity(path: Path) -> dict:
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def identity(stage: Stage, cfg) -> dict:
    """The values and input identities that determine `stage`'s outputs now."""
    params = {k: cfg[k] for k in stage.params if k not in NOT_IDENTITY}
    if params.get("input_policy", "reference") != "reference":
        # only `reference` lets the batch size (and so the batching file) change embeddings
        params.pop("batch_size", None)
        params.pop("reference_trial_file", None)
    if stage.inputs:
        params.update(stage.load("inputs")(cfg))
    return json.loads(json.dumps(params))  # as it reads back from JSON (tuples -> lists)


def load_record(paths: Paths, number: int) -> dict | None:
    try:
        return json.loads(paths.record(number).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # absent or unreadable: nothing it claims is trusted


def digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def differences(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            diffs += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            diffs.append(f"{prefix}{key}: {_short(old)} (outputs) vs {_short(new)} (now)")
    return diffs


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _differences_for_readers(number: int, recorded: dict, current: dict) -> list[str]:
    """Differences that matter to a stage reading `number`'s outputs.

    Stage 5 pools only the current known attacks' fingerprints, so stage 4's scores of a
    superset of them serve it as well. An input that cannot be identified now (None: a
    checkpoint no longer there) is taken as recorded: the reader does not need it."""
    current = {k: (recorded.get(k) if v is None else v) for k, v in current.items()}
    if number == 4 and set(current.get("known_attacks", [])) <= set(recorded.get("known_attacks", [])):
        kept = {k: v for k, v in recorded.get("trial_protocols", {}).items() if k in current.get("trial_protocols", {})}
        return differences({"trial_protocols": kept}, {"trial_protocols": current.get("trial_protocols", {})})
    return differences(recorded, current)


class Checker:
    """Answers "is stage N current?" for one config, each stage's identity computed once."""

    def __init__(self, cfg_of, paths: Paths):
        self.cfg_of = cfg_of  # stage number -> that stage's view of the config
        self.paths = paths
        self._identity: dict[int, dict] = {}

    def identity(self, number: int) -> dict:
        if number not in self._identity:
            self._identity[number] = identity(STAGES[number], self.cfg_of(number))
        return self._identity[number]

    def problem(self, number: int, as_upstream: bool = False) -> str | None:
        """None when stage `number` is current, else why not (one clause)."""
        record = load_record(self.paths, number)
        if record is None:
            return NOT_RUN
        if not outputs_intact(self.paths, record):
            return "its outputs were changed or removed after it ran"
        current = self.identity(number)
        diffs = (_differences_for_readers if as_upstream else lambda n, r, c: differences(r, c))(number, record["params"], current)
        if diffs:
            return "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        for u in STAGES[number].upstream:
            upstream = load_record(self.paths, u)
            if upstream is None or record["upstream"].get(str(u)) != digest(upstream):
                return f"stage {u} ran again after it"
            if self.problem(u, as_upstream=True):
                return f"it read stage {u}, which is out of date"
        return None


def outputs_intact(paths: Paths, record: dict) -> bool:
    """Every output as recorded (size, time), and the stage's rows of the skip manifest too."""
    for name, recorded in record.get("outputs", {}).items():
        path = paths.output_dir / name
        if not path.is_file() or stat_identity(path) != recorded:
            return False
    skipped = record.get("skipped", {"count": 0})
    if skipped["count"] or paths.skipped_csv.is_file():
        return skips_digest(read_skips(paths.skipped_csv, record["stage"])) == skipped["sha256"]
    return True


def commit(paths: Paths, number: int, params: dict, upstream: dict[int, dict], outputs: list[Path],
           skips: list[Skip], world_size: int) -> None:
    """Replace stage `number`'s outputs and record in one step.

    The new outputs wait in the stage's staging folder. Their record is written there last:
    from then on the commit is decided, and `apply_staged` (run now, or by the next run
    after a kill) moves the outputs into place and the record after them. Before that
    point nothing outside the staging folder has changed.
    """
    staging = paths.staging(number)
    rel = [str(Path(p).relative_to(paths.output_dir)) for p in outputs]
    record = {"stage": number, "params": params, "upstream": {str(u): digest(r) for u, r in upstream.items()},
              "outputs": {name: stat_identity(staging / name) for name in rel},
              "skipped": {"count": len(skips), "sha256": skips_digest(skips)}, "world_size": world_size}
    text = manifest_text(read_skips(paths.skipped_csv), number, skips)
    write_text(staging / STAGED_MANIFEST, text if text is not None else "")
    write_text(staging / STAGED_RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
    kill_point("commit")
    apply_staged(paths, number)


def apply_staged(paths: Paths, number: int) -> bool:
    """Finish a decided commit found in the staging folder; False when there is none."""
    staging = paths.staging(number)
    staged_record = staging / STAGED_RECORD
    if not staged_record.is_file():
        return False
    record = json.loads(staged_record.read_text())
    old = load_record(paths, number)
    paths.record(number).unlink(missing_ok=True)  # from here until the end, no record: nothing trusted
    for name in record["outputs"]:
        source, target = staging / name, paths.output_dir / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    for name in (old or {}).get("outputs", {}):
        if name not in record["outputs"]:
            (paths.output_dir / name).unlink(missing_ok=True)
    manifest = staging / STAGED_MANIFEST
    if manifest.is_file():
        text = manifest.read_text()
        write_manifest(paths.skipped_csv, text or None)
    paths.record(number).parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged_record, paths.record(number))
    remove_tree(staging, paths.staging_root)
    return True
