"""Stage records, as DVC's lock file: what produced each output, and whether it still holds.

`<output_dir>/<system>_records/stage<N>.json` holds:

- `identity`: what the stage's outputs depend on, as its declaration in `registry.py` says
  (its `params` config values and the identities its `inputs` function gives: SHA-256 of
  protocols and checkpoint, size and modification time of audio, as `make`); where the
  identity holds a digest of many files' identities (audio), the listing itself is kept
  beside the record (`stage<N>.<entry>.tsv`) so that a change can be named file by file;
- `upstream`: the digest of each upstream record it read, or `made elsewhere` where it read
  an upstream stage's files with no record of ours (their SHA-256 are then in `identity`);
- `outputs`: size, modification time and SHA-256 of every file it wrote; `skipped`: how
  many utterances it left out and the digest of their rows in the skip manifest;
- `world_size`: how many processes ran it (not part of the identity).

A stage is *current* when its record exists, its identity equals what the config and inputs
give now, its outputs and skip rows are as recorded, and every upstream stage is current
and still the one it read: transitively, so a change anywhere makes everything below it
out of date. A record is replaced only together with its outputs (`commit`). This module
stores, compares and explains; identities are computed from the declarations only.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from .registry import STAGES, Stage
from .stage_result import Skip
from .store import LISTINGS, Paths, file_digest, ids_path, remove_tree, stat_identity, write_text
from .testhooks import kill_point
from .store.skips import manifest_text, read_skips, skips_digest, write_manifest

log = logging.getLogger("sourcetrace")
STAGED_RECORD = ".record.json"
STAGED_MANIFEST = ".skipped.csv"
NOT_RUN = "no record of it"
DAMAGED = "its record is damaged (not a record of this toolkit)"
MADE_ELSEWHERE = "made elsewhere"
RECORD_KEYS = {"stage": int, "identity": dict, "upstream": dict, "outputs": dict, "skipped": dict}


def made_elsewhere_files(paths: Paths, attribute: str) -> list[Path]:
    """The files a stage reads as `paths.<attribute>` when no stage of ours made them."""
    target = getattr(paths, attribute)
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.is_file())
    return [p for p in (target, ids_path(target)) if p.is_file()] if target.suffix == ".npy" else \
        ([target] if target.is_file() else [])


def identity(stage: Stage, cfg, paths: Paths | None = None) -> dict:
    """What `stage`'s outputs depend on now: its declared `params`, the identities its
    `inputs` function gives, and the SHA-256 of upstream files made elsewhere (no record)."""
    found = {k: cfg[k] for k in stage.params}
    if stage.inputs:
        found.update(stage.load("inputs")(cfg))
    paths = paths or Paths.of(cfg)
    reads = stage.upstream_for(cfg)
    for u, attribute in sorted(stage.made_elsewhere.items()):
        if u in reads and not paths.record(u).is_file():
            files = made_elsewhere_files(paths, attribute)
            if files:
                found.setdefault("made_elsewhere", {})[str(u)] = {
                    str(p.relative_to(paths.output_dir)): file_digest(p) for p in files}
    return json.loads(json.dumps(found))  # as it reads back from JSON (tuples -> lists)


def identity_digest(value: dict) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def work_key(stage: Stage, ident: dict) -> str:
    """The name of the stage's work folder: a digest of the identity entries it declares."""
    keyed = ident if stage.work_key is None else {k: ident.get(k) for k in stage.work_key}
    return identity_digest(keyed)[:16]


def load_record(paths: Paths, number: int) -> dict | None:
    """The record of stage `number`; None when absent. A file that is not a record (bad JSON,
    wrong shape) is an empty dict: nothing it claims is trusted, and it is not "absent"."""
    try:
        record = json.loads(paths.record(number).read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return {}
    if not isinstance(record, dict) or any(not isinstance(record.get(k), t) for k, t in RECORD_KEYS.items()):
        return {}
    return record


def digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def differences(recorded: dict, current: dict, prefix: str = "", record_dir: Path | None = None) -> list[str]:
    diffs = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            diffs += differences(old, new, f"{prefix}{key}.", record_dir)
        elif old != new:
            named = _listing_changes(record_dir, old, new) if record_dir else None
            diffs.append(f"{prefix}{key} changed: {named}" if named else
                         f"{prefix}{key}: {_short(old)} (outputs) vs {_short(new)} (now)")
    return diffs


def _listing_changes(record_dir: Path, old, new) -> str | None:
    """'AA01/x.flac (size 10 -> 12) and 3 more' for two listing digests, when both are known."""
    if not (isinstance(old, str) and isinstance(new, str) and new in LISTINGS):
        return None
    kept = record_dir / f"listing.{old}.tsv"
    if not kept.is_file():
        return None
    before = dict(_split(line) for line in kept.read_text().splitlines())
    after = dict(_split(line) for line in LISTINGS[new].splitlines())
    changed = [f"{name} ({before.get(name, 'absent')} -> {after.get(name, 'absent')})"
               for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]
    if not changed:
        return None
    return ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")


def _split(line: str) -> tuple[str, str]:
    name, _, value = line.rpartition("\t")
    return name, value


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _differences_for_readers(number: int, recorded: dict, current: dict, record_dir: Path) -> list[str]:
    """Differences that matter to a stage reading `number`'s outputs.

    Stage 5 pools only the current known attacks' fingerprints, so stage 4's scores of a
    superset of them serve it as well (its other values must still match). An input that
    cannot be identified now (None: a checkpoint no longer there) is taken as recorded: the
    reader does not need it."""
    current = {k: (recorded.get(k) if v is None else v) for k, v in current.items()}
    if number == 4 and set(current.get("known_attacks", [])) <= set(recorded.get("known_attacks", [])):
        kept = {k: v for k, v in recorded.get("trial_protocols", {}).items() if k in current.get("trial_protocols", {})}
        recorded = {**recorded, "known_attacks": current.get("known_attacks"), "trial_protocols": kept}
    return differences(recorded, current, record_dir=record_dir)


def explain(diffs: list[str]) -> str:
    return "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")


class Checker:
    """Answers "is stage N current?" for one config, each stage's identity computed once."""

    def __init__(self, cfg_of, paths: Paths):
        self.cfg_of = cfg_of  # stage number -> that stage's view of the config
        self.paths = paths
        self._identity: dict[int, dict] = {}

    def identity(self, number: int) -> dict:
        if number not in self._identity:
            self._identity[number] = identity(STAGES[number], self.cfg_of(number), self.paths)
        return self._identity[number]

    def problem(self, number: int, as_upstream: bool = False) -> str | None:
        """None when stage `number` is current, else why not (one clause)."""
        record = load_record(self.paths, number)
        if record is None:
            return NOT_RUN
        if not record:
            return DAMAGED
        intact = outputs_problem(self.paths, record)
        if intact:
            return intact
        replaced = _made_elsewhere_replaced(self.paths, number, record)
        if replaced:
            return replaced
        current = self.identity(number)
        if as_upstream:
            diffs = _differences_for_readers(number, record["identity"], current, self.paths.records_dir)
        else:
            diffs = differences(record["identity"], current, record_dir=self.paths.records_dir)
        if diffs:
            return explain(diffs)
        return upstream_problem(self.paths, number, record, check=lambda u: self.problem(u, as_upstream=True))


def _made_elsewhere_replaced(paths: Paths, number: int, record: dict) -> str | None:
    """Says so when an upstream stage whose files `record` read as made elsewhere has run since."""
    for u in map(int, record["upstream"]):
        if record["upstream"][str(u)] == MADE_ELSEWHERE and load_record(paths, u) is not None:
            return f"stage {u} ran after it (it had read stage {u}'s files as made elsewhere)"
    return None


def upstream_problem(paths: Paths, number: int, record: dict, check) -> str | None:
    """Why the upstream stages `record` read are no longer the ones it read (None: they are).

    `check(u)` says whether upstream stage u is itself current (None) or why not."""
    replaced = _made_elsewhere_replaced(paths, number, record)
    if replaced:
        return replaced
    for u in map(int, record["upstream"]):  # the stages it read
        upstream = load_record(paths, u)
        read = record["upstream"].get(str(u))
        if read == MADE_ELSEWHERE:
            continue
        if upstream is None or not upstream or read != digest(upstream):
            return f"stage {u} ran again after it" if upstream else f"stage {u}'s record is gone or damaged"
        why = check(u)
        if why:
            return f"it read stage {u}, which is out of date ({why})"
    return None


def chain_problem(paths: Paths, number: int) -> str | None:
    """Without a config: is stage `number`'s record there, its outputs as it wrote them, and
    every upstream record (transitively) still the one it read? None when so, else why not."""
    record = load_record(paths, number)
    if record is None:
        return f"{STAGES[number].hint} has no record in {paths.output_dir}"
    if not record:
        return f"{paths.record(number)}: {DAMAGED}"
    intact = outputs_problem(paths, record)
    if intact:
        return f"{STAGES[number].hint}: {intact}"
    for files in record["identity"].get("made_elsewhere", {}).values():
        for name, sha in files.items():
            path = paths.output_dir / name
            if not path.is_file() or file_digest(path) != sha:
                return f"{STAGES[number].hint}: {name}, which it read as made elsewhere, changed after it ran"
    return upstream_problem(paths, number, record, check=lambda u: chain_problem(paths, u))


def outputs_problem(paths: Paths, record: dict) -> str | None:
    """None when every output is as recorded and the stage's skip rows too, else why not.

    Size and modification time decide at once; a file whose size is right but whose time
    differs (copied without keeping times) is compared by its SHA-256."""
    for name, recorded in record["outputs"].items():
        path = paths.output_dir / name
        if not path.is_file():
            return f"its output {name} was removed"
        now = stat_identity(path)
        if now == {k: recorded.get(k) for k in now}:
            continue
        if now["size"] != recorded.get("size") or file_digest(path) != recorded.get("sha256"):
            return f"its output {name} was changed after it ran"
    skipped = record["skipped"]
    if skipped.get("count") or paths.skipped_csv.is_file():
        if skips_digest(read_skips(paths.skipped_csv, record["stage"])) != skipped.get("sha256"):
            return f"its rows of {paths.skipped_csv.name} were changed"
    return None


def outputs_intact(paths: Paths, record: dict) -> bool:
    return outputs_problem(paths, record) is None


def commit(paths: Paths, number: int, ident: dict, upstream: dict[int, dict | None], outputs: list[Path],
           skips: list[Skip], world_size: int) -> None:
    """Replace stage `number`'s outputs and record in one step.

    The new outputs wait in the stage's staging folder. Their record is written there last:
    from then on the commit is decided, and `apply_staged` (run now, or by the next run
    after a kill) moves the outputs into place and the record after them. Before that
    point nothing outside the staging folder has changed. `upstream[u]` is None for an
    upstream stage whose files were read as made elsewhere.
    """
    staging = paths.staging(number)
    rel = [str(Path(p).relative_to(paths.output_dir)) for p in outputs]
    record = {"stage": number, "identity": ident,
              "upstream": {str(u): MADE_ELSEWHERE if r is None else digest(r) for u, r in upstream.items()},
              "outputs": {name: {**stat_identity(staging / name), "sha256": file_digest(staging / name)}
                          for name in rel},
              "skipped": {"count": len(skips), "sha256": skips_digest(skips)}, "world_size": world_size}
    text = manifest_text(read_skips(paths.skipped_csv), number, skips)
    write_text(staging / STAGED_MANIFEST, text if text is not None else "")
    for value in _string_values(ident):
        if value in LISTINGS:  # a digest of file identities: its listing goes beside the record
            write_text(staging / f".listing.{value}.tsv", LISTINGS[value])
    write_text(staging / STAGED_RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
    kill_point("commit")
    apply_staged(paths, number)


def _string_values(value):
    """Every string in a record's identity, at any depth (listing digests among them)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _string_values(v)
    elif isinstance(value, str):
        yield value


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
    listings = {p.name[1:] for p in staging.glob(".listing.*.tsv")}
    for listing in listings:
        os.replace(staging / f".{listing}", paths.records_dir / listing)
    os.replace(staged_record, paths.record(number))
    _remove_unused_listings(paths)
    remove_tree(staging, paths.staging_root)
    return True


def _remove_unused_listings(paths: Paths) -> None:
    used = set()
    for n in STAGES:
        record = load_record(paths, n)
        if record:
            used |= set(_string_values(record["identity"]))
    for kept in paths.records_dir.glob("listing.*.tsv"):
        if kept.name.split(".")[1] not in used:
            kept.unlink(missing_ok=True)
