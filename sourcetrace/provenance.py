"""What produced each output, so a stage knows when it is up to date and when its inputs are stale.

After a stage succeeds it writes `<output_dir>/<system>_records/stage<N>.json`:

- `params`: the config values the stage uses and the identities (SHA-256) of the files it
  reads that no other stage wrote: protocol files, the checkpoint;
- `upstream`: the digest of each record it consumed;
- `outputs`: size and modification time of every file it wrote;
- `skipped`: utterances left out under `on_error: skip`.

A stage whose record matches the current config, inputs and upstream records, and whose
outputs are intact, is up to date and does nothing. A stage whose upstream outputs were
produced under other values than the current config's stops and names them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import StageError
from .protocols import protocol_files, trial_fingerprint
from .store import write_text

UPSTREAM = {1: [], 2: [1], 3: [], 4: [2, 3], 5: [4]}
SCRIPTS = {1: "fingerprint_embedding_extraction.py", 2: "create_fingerprint_avg_emb_csv.py",
           3: "trials_embedding_extraction.py", 4: "cosine_sim.py", 5: "compute_eer_pooled.py"}
_digests: dict[tuple, str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file, computed once per process for a given size and mtime."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def _protocols(directory: str, trials: bool, attacks: list[str] | None = None) -> dict[str, str]:
    paths = protocol_files(Path(directory), trials=trials)
    if attacks is not None:
        paths = [p for p in paths if trial_fingerprint(p)[1] in attacks]
    return {p.name: file_digest(p) for p in paths}


def _model(cfg: dict) -> dict:
    params = {"model_path": cfg["model_path"], "checkpoint_sha256": file_digest(cfg["model_path"]),
              "model_config": cfg["model_config"], "input_policy": cfg["input_policy"],
              "on_error": cfg["on_error"]}
    if cfg["input_policy"] == "reference":  # only there does the batch size change embeddings
        params["batch_size"] = cfg["batch_size"]
    if cfg["precision"] != "fp32":  # reduced precision changes embeddings (slightly)
        params["precision"] = cfg["precision"]
    return params


def stage_params(cfg: dict, stage: int) -> dict:
    """The config values and input identities that determine stage `stage`'s outputs."""
    if stage == 1:
        return {**_model(cfg), "database_path": cfg["database_path"], "enroll_audio": cfg["enroll_audio"],
                "enroll_protocols": _protocols(cfg["enroll_protocol_dir"], trials=False)}
    if stage == 2:
        return {"enroll_protocols": _protocols(cfg["enroll_protocol_dir"], trials=False)}
    if stage == 3:
        return {**_model(cfg), "database_path": cfg["database_path"], "trial_audio": cfg["trial_audio"],
                "trial_protocols": _protocols(cfg["trial_protocol_dir"], trials=True)}
    if stage == 4:
        return {"known_attacks": sorted(cfg["known_attacks"]),
                "trial_protocols": _protocols(cfg["trial_protocol_dir"], True, cfg["known_attacks"])}
    if stage == 5:
        return {"known_attacks": sorted(cfg["known_attacks"]), "unknown_filter": cfg["unknown_filter"]}
    raise ValueError(stage)


def record_path(cfg: dict, stage: int) -> Path:
    return Path(cfg["output_dir"]) / f"{cfg['system']}_records" / f"stage{stage}.json"


def load_record(cfg: dict, stage: int) -> dict | None:
    path = record_path(cfg, stage)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None  # unreadable: treated as absent, the stage recomputes


def digest(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _identity(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def outputs_intact(cfg: dict, record: dict) -> bool:
    for name, identity in record.get("outputs", {}).items():
        path = Path(cfg["output_dir"]) / name
        if not path.is_file() or _identity(path) != identity:
            return False
    return True


def _differences(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            diffs += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            diffs.append(f"{prefix}{key}: {_short(old)} (outputs) vs {_short(new)} (now)")
    return diffs


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _compatible(stage: int, recorded: dict, current: dict) -> list[str]:
    if stage == 4 and set(current["known_attacks"]) <= set(recorded["known_attacks"]):
        # stage 5 pools only the current known attacks' fingerprints: scores of a superset serve
        kept = {k: v for k, v in recorded["trial_protocols"].items() if k in current["trial_protocols"]}
        return _differences({"trial_protocols": kept}, {"trial_protocols": current["trial_protocols"]})
    return _differences(recorded, current)


def _all_upstream(stage: int) -> list[int]:
    seen: list[int] = []
    for u in UPSTREAM[stage]:
        for v in _all_upstream(u) + [u]:
            if v not in seen:
                seen.append(v)
    return seen


def check_upstream(cfg: dict, stage: int, allow_stale: bool) -> dict[int, dict]:
    """Records of the stages `stage` reads; stale ones stop the run unless `allow_stale`."""
    records = {}
    problems = []
    for u in _all_upstream(stage):
        record = load_record(cfg, u)
        if record is None:
            continue  # the stage itself reports missing outputs
        records[u] = record
        diffs = _compatible(u, record["params"], stage_params(cfg, u))
        if not outputs_intact(cfg, record):
            diffs.append("its outputs were changed or removed after it ran")
        if diffs:
            problems.append(f"stage {u} ({SCRIPTS[u]}) is stale: " + "; ".join(diffs[:4])
                            + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else ""))
    if problems and not allow_stale:
        raise StageError(" | ".join(problems) + " -- re-run the stale stage(s) with this config, "
                         "or pass --allow-stale to use them anyway")
    return records


def current_record(cfg: dict, stage: int, upstream: dict[int, dict]) -> dict:
    return {"stage": stage, "params": stage_params(cfg, stage),
            "upstream": {str(u): digest(upstream[u]) for u in UPSTREAM[stage] if u in upstream}}


def up_to_date(cfg: dict, stage: int, wanted: dict) -> bool:
    record = load_record(cfg, stage)
    return (record is not None and record["params"] == wanted["params"]
            and record["upstream"] == wanted["upstream"] and outputs_intact(cfg, record))


def save_record(cfg: dict, wanted: dict, outputs: list[Path], skipped: list[dict]) -> None:
    root = Path(cfg["output_dir"])
    record = dict(wanted, outputs={str(Path(p).relative_to(root)): _identity(Path(p)) for p in outputs},
                  skipped=skipped)
    write_text(record_path(cfg, wanted["stage"]), json.dumps(record, indent=1, sort_keys=True) + "\n")
