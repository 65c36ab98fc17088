"""The five stages of the STOPA source-tracing pipeline, each a function of a config.

All outputs go under `output_dir` and are named after `system`:

1. `<system>_embeddings/<fingerprint>.npy` (+ `.ids.tsv`): enrollment embeddings.
2. `<system>_fingerprint_avg_emb.csv`: the mean of each fingerprint's embeddings.
3. `<system>_protocol_trials.npy` (+ `.ids.tsv`): every distinct trial utterance, once.
4. `<system>_evaluation.csv`: the trial rows of known-attack fingerprints + `CosScore`.
5. `<system>_EERs_pooled/pooled_eer_kn.csv`, `pooled_eer_ukn.csv`: pooled EERs.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

import models
from models import CheckpointError

from . import metrics
from .engine import Extractor, Utterance, resolve_device
from .errors import StageError
from .protocols import (column_index, line_of, parse_booleans, protocol_files, read_enrollment, read_trials,
                        trial_fingerprint)
from .scoring import cosine_scores
from .store import atomic_path, ids_path, load_embeddings, save_embeddings, write_text

log = logging.getLogger("sourcetrace")


@dataclass
class StageResult:
    """What a stage wrote, and what it left out under `on_error: skip`."""

    outputs: list[Path]
    skipped: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------- paths

def output_dir(cfg: dict) -> Path:
    return Path(cfg["output_dir"])


def enrollment_dir(cfg: dict) -> Path:
    return output_dir(cfg) / f"{cfg['system']}_embeddings"


def fingerprint_csv(cfg: dict) -> Path:
    return output_dir(cfg) / f"{cfg['system']}_fingerprint_avg_emb.csv"


def trial_embeddings(cfg: dict) -> Path:
    return output_dir(cfg) / f"{cfg['system']}_protocol_trials.npy"


def evaluation_csv(cfg: dict) -> Path:
    return output_dir(cfg) / f"{cfg['system']}_evaluation.csv"


def eer_dir(cfg: dict) -> Path:
    return output_dir(cfg) / f"{cfg['system']}_EERs_pooled"


def work_dir(cfg: dict) -> Path:
    return output_dir(cfg) / f".{cfg['system']}_work"


def skipped_csv(cfg: dict) -> Path:
    return output_dir(cfg) / f"{cfg['system']}_skipped.csv"


def write_skip_manifest(cfg: dict, records: list[dict]) -> None:
    """`<system>_skipped.csv`: every skip of every stage's current record (removed when none)."""
    rows = [row for record in records for row in record.get("skipped", [])]
    path = skipped_csv(cfg)
    if not rows:
        path.unlink(missing_ok=True)
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["stage", "protocol", "line", "attack", "file", "reason"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def _skip(stage: int, source: str, attack: str, file: str, reason: str) -> dict:
    protocol, _, line = source.rpartition(":")
    return {"stage": stage, "protocol": protocol, "line": int(line) if line.isdigit() else "",
            "attack": attack, "file": file, "reason": reason}


# ---------------------------------------------------------------- shared helpers

def audio_path(template: str, cfg: dict, attack: str, file: str) -> Path:
    try:
        return Path(template.format(database_path=cfg["database_path"], attack=attack, file=file))
    except (KeyError, IndexError, ValueError) as exc:
        raise StageError(f"audio path template {template!r}: only {{database_path}}, {{attack}} and "
                         f"{{file}} may appear ({exc})") from None


def build_extractor(cfg: dict) -> Extractor:
    device = resolve_device(cfg["device"])
    try:
        model = models.load_model(cfg["model_config"], cfg["model_path"], cfg["input_policy"], device)
    except CheckpointError as exc:
        raise StageError(str(exc)) from None
    if cfg["input_policy"] == "reference":
        log.warning("input_policy 'reference': whole utterances zero-padded to the longest in each batch "
                    "of %d, as the published STOPA scripts did; embeddings then depend on batch "
                    "neighbours and batch size", cfg["batch_size"])
    log.info("%s: %s on %s, input policy %s", cfg["system"], cfg["model_path"], device, cfg["input_policy"])
    return Extractor(model, cfg["input_policy"], cfg["batch_size"], cfg["num_workers"], device,
                     on_error=cfg["on_error"], chunk_size=cfg["chunk_size"],
                     signature=f"{Path(cfg['model_path']).resolve()}:{json.dumps(cfg['model_config'], sort_keys=True)}")


def read_enrollments(cfg: dict):
    return [read_enrollment(p) for p in protocol_files(Path(cfg["enroll_protocol_dir"]))]


def trial_paths(cfg: dict) -> list[Path]:
    return protocol_files(Path(cfg["trial_protocol_dir"]), trials=True)


# ---------------------------------------------------------------- stage 1

def extract_enrollment(cfg: dict, upstream: dict) -> StageResult:
    """Stage 1: embeddings of every enrollment utterance, one matrix per fingerprint."""
    protocols = read_enrollments(cfg)
    extractor = build_extractor(cfg)
    utterances: list[Utterance] = []
    rows_of: list[list[int]] = []  # per protocol: utterance index of each row
    segments: list[range] = []
    index: dict[tuple[str, str], int] = {}
    for protocol in protocols:
        rows = []
        start = len(utterances)
        for file, attack, line in zip(protocol.files, protocol.attacks, protocol.lines):
            key = (attack, file)
            # `reference` keeps every occurrence: its batches (and so embeddings) follow protocol order
            if cfg["input_policy"] == "reference" or key not in index:
                index[key] = len(utterances)
                utterances.append(Utterance(attack, file, audio_path(cfg["enroll_audio"], cfg, attack, file),
                                            f"{protocol.path}:{line}"))
            rows.append(index[key])
        segments.append(range(start, len(utterances)))
        rows_of.append(rows)
    log.info("%d enrollment protocol(s), %d rows, %d utterance(s) to extract",
             len(protocols), sum(map(len, rows_of)), len(utterances))
    result = extractor.extract(utterances, work_dir(cfg) / "stage1", segments, desc="enrollment")
    outputs, skipped = [], []
    for protocol, rows in zip(protocols, rows_of):
        kept = [i for i in rows if i not in result.failed]
        skipped += [_skip(1, f"{protocol.path}:{line}", utterances[i].attack, utterances[i].file, result.failed[i])
                    for i, line in zip(rows, protocol.lines) if i in result.failed]
        npy = enrollment_dir(cfg) / f"{protocol.fingerprint}.npy"
        save_embeddings(npy, result.embeddings[kept].reshape(len(kept), -1), [utterances[i].key for i in kept])
        outputs += [npy, ids_path(npy)]
    log.info("wrote %d fingerprint matrices to %s", len(protocols), enrollment_dir(cfg))
    if skipped:
        log.warning("skipped %d enrollment row(s) (%d utterance(s)); see %s", len(skipped), len(result.failed),
                    skipped_csv(cfg))
    return StageResult(outputs, skipped)


# ---------------------------------------------------------------- stage 2

def _skipped_keys(record: dict | None) -> set[tuple[str, str]]:
    return {(row["protocol"], row["file"]) for row in (record or {}).get("skipped", [])}


def average_fingerprints(cfg: dict, upstream: dict) -> StageResult:
    """Stage 2: the plain arithmetic mean of each fingerprint's enrollment embeddings."""
    protocols = read_enrollments(cfg)
    skipped_rows = _skipped_keys(upstream.get(1))
    names, means, skipped = [], [], []
    for protocol in protocols:
        npy = enrollment_dir(cfg) / f"{protocol.fingerprint}.npy"
        embeddings, ids = load_embeddings(npy, "stage 1 (fingerprint_embedding_extraction.py)")
        expected = [(a, f) for a, f in zip(protocol.attacks, protocol.files)
                    if (str(protocol.path), f) not in skipped_rows]
        if ids != expected:
            raise StageError(f"{npy}: its utterances differ from {protocol.path}; run stage 1 again")
        if not ids:
            reason = "no enrollment embedding left (every row skipped in stage 1)"
            if cfg["on_error"] != "skip":
                raise StageError(f"{protocol.path}: {reason}")
            skipped.append(_skip(2, f"{protocol.path}:", protocol.attack, protocol.fingerprint, reason))
            continue
        names.append(protocol.fingerprint)
        means.append(embeddings.mean(axis=0, dtype=np.float64).astype(np.float32))
    if skipped_rows:
        log.warning("%d enrollment row(s) skipped in stage 1 are not in the averages", len(skipped_rows))
    dim = means[0].shape[0]
    lines = ["file," + ",".join(map(str, range(dim)))]
    lines += [name + "," + ",".join(str(v) for v in mean) for name, mean in zip(names, means)]
    write_text(fingerprint_csv(cfg), "\n".join(lines) + "\n")
    log.info("wrote %d fingerprints (%d dims) to %s", len(names), dim, fingerprint_csv(cfg))
    return StageResult([fingerprint_csv(cfg)], skipped)


def read_fingerprints(path: Path) -> tuple[list[str], np.ndarray]:
    if not path.is_file():
        raise StageError(f"{path}: not found; run stage 2 (create_fingerprint_avg_emb_csv.py) first")
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={"file": pa.string()}))
    if table.column_names[0] != "file":
        raise StageError(f"{path}:1: expected the header 'file,0,1,...'")
    names = table.column("file").to_pylist()
    matrix = np.column_stack([table.column(i).to_numpy().astype(np.float32) for i in range(1, table.num_columns)])
    return names, matrix


# ---------------------------------------------------------------- stage 3

def extract_trials(cfg: dict, upstream: dict) -> StageResult:
    """Stage 3: embeddings of every distinct trial utterance across all trial files, once."""
    keys = []
    sources = {}
    for path in trial_paths(cfg):
        protocol = read_trials(path, identity_only=True)
        joined = pc.binary_join_element_wise(protocol.table.column(protocol.attack_column),
                                             protocol.table.column(protocol.file_column), "\t")
        unique, first = np.unique(joined.to_numpy(zero_copy_only=False).astype(str), return_index=True)
        for key, row in zip(unique, first):
            sources.setdefault(key, f"{path}:{row + 2}")
        keys.append(pc.unique(joined))
    keys = pc.unique(pa.chunked_array(keys)).to_pylist()
    utterances = []
    for key in keys:
        attack, file = key.split("\t", 1)
        utterances.append(Utterance(attack, file, audio_path(cfg["trial_audio"], cfg, attack, file), sources[key]))
    log.info("%d distinct trial utterance(s)", len(utterances))
    extractor = build_extractor(cfg)
    result = extractor.extract(utterances, work_dir(cfg) / "stage3", desc="trials")
    kept = [i for i in range(len(utterances)) if i not in result.failed]
    save_embeddings(trial_embeddings(cfg), result.embeddings[kept], [utterances[i].key for i in kept])
    log.info("wrote %s", trial_embeddings(cfg))
    skipped = [_skip(3, u.source, u.attack, u.file, reason)
               for i, reason in sorted(result.failed.items()) for u in [utterances[i]]]
    if skipped:
        log.warning("skipped %d trial utterance(s); see %s", len(skipped), skipped_csv(cfg))
    return StageResult([trial_embeddings(cfg), ids_path(trial_embeddings(cfg))], skipped)


# ---------------------------------------------------------------- stage 4

def score_trials(cfg: dict, upstream: dict) -> StageResult:
    """Stage 4: cosine score of every trial row of the known attacks' fingerprints."""
    fp_names, fp_matrix = read_fingerprints(fingerprint_csv(cfg))
    embeddings, ids = load_embeddings(trial_embeddings(cfg), "stage 3 (trials_embedding_extraction.py)")
    if fp_matrix.shape[1] != embeddings.shape[1]:
        raise StageError(f"{fingerprint_csv(cfg)} has {fp_matrix.shape[1]} dims but {trial_embeddings(cfg)} "
                         f"has {embeddings.shape[1]}; re-run stages 2-3 with the same system")
    id_keys = pa.array([f"{a}\t{f}" for a, f in ids])
    # rows left out upstream under on_error=skip: utterances of stage 3, fingerprints of stage 2
    skipped_utts = pa.array([f"{r['attack']}\t{r['file']}" for r in (upstream.get(3) or {}).get("skipped", [])],
                            pa.string())
    skipped_fps = pa.array([r["file"] for r in (upstream.get(2) or {}).get("skipped", [])], pa.string())
    excluded = 0
    fp_keys = pa.array(fp_names)
    known = set(cfg["known_attacks"])
    paths = [p for p in trial_paths(cfg) if trial_fingerprint(p)[1] in known]
    if not paths:
        raise StageError(f"{cfg['trial_protocol_dir']}: no trial files of the known attacks "
                         f"{', '.join(cfg['known_attacks'])}")
    header = None
    rows = 0
    out = evaluation_csv(cfg)
    with atomic_path(out) as tmp:
        writer = None
        for path in paths:
            protocol = read_trials(path)
            table = protocol.table
            if header is None:
                header = table.column_names
                writer = pacsv.CSVWriter(tmp, table.schema.append(pa.field("CosScore", pa.float32())),
                                         write_options=pacsv.WriteOptions(quoting_style="none",
                                                                          quoting_header="none"))
            elif table.column_names != header:
                raise StageError(f"{path}:1: header differs from {paths[0].name}'s "
                                 f"({' '.join(table.column_names)} vs {' '.join(header)})")
            fingerprints = pa.array(protocol.fingerprints, pa.string())
            trial_keys = pc.binary_join_element_wise(table.column(protocol.attack_column),
                                                     table.column(protocol.file_column), "\t")
            if len(skipped_utts) or len(skipped_fps):
                keep = pc.invert(pc.or_(pc.is_in(trial_keys, value_set=skipped_utts),
                                        pc.is_in(fingerprints, value_set=skipped_fps)))
                excluded += table.num_rows - pc.sum(keep).as_py()
                table, fingerprints, trial_keys = table.filter(keep), fingerprints.filter(keep), trial_keys.filter(keep)
            fp_index = _lookup(fingerprints, fp_keys, path,
                               "fingerprint {} has no enrollment (not in the fingerprint CSV)")
            trial_index = _lookup(trial_keys, id_keys, path,
                                  "trial utterance {} has no embedding; re-run stage 3")
            scores = cosine_scores(fp_matrix, embeddings, fp_index, trial_index)
            writer.write_table(table.append_column("CosScore", pa.array(scores)))
            rows += table.num_rows
        writer.close()
    log.info("scored %d trial rows from %d trial file(s) into %s", rows, len(paths), out)
    if excluded:
        log.warning("%d trial row(s) left out: their utterance or fingerprint was skipped upstream", excluded)
    return StageResult([out])


def _lookup(values: pa.Array, value_set: pa.Array, path: Path, message: str) -> np.ndarray:
    found = pc.index_in(values, value_set=value_set)
    if found.null_count:
        row = int(np.flatnonzero(found.is_null().to_numpy(zero_copy_only=False))[0])
        raise StageError(f"{path}:{line_of(path, row)}: " + message.format(repr(values[row].as_py())))
    return found.to_numpy()


# ---------------------------------------------------------------- stage 5

def pooled_eer(cfg: dict, upstream: dict) -> StageResult:
    """Stage 5: pooled EERs of the known and unknown scenarios, by ATK, AM and VM."""
    path = evaluation_csv(cfg)
    if not path.is_file():
        raise StageError(f"{path}: not found; run stage 4 (cosine_sim.py) first")
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split(",")
    attack_column = header[column_index(header, "ATK", 4, path)]
    needed = [attack_column, *metrics.LABELS.values(), "CosScore"]
    if "AbstractModel" in header:  # pool the current known attacks' fingerprints only
        needed.insert(0, "AbstractModel")
    missing = [c for c in needed if c not in header]
    if missing:
        raise StageError(f"{path}:1: missing column(s) {', '.join(missing)}")
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        include_columns=needed,
        column_types={**{c: pa.string() for c in needed[:-1]}, "CosScore": pa.float64()}))
    if "AbstractModel" in header:
        fp_attack = pc.list_element(pc.split_pattern(table.column("AbstractModel"), "-", max_splits=1), 0)
        table = table.filter(pc.is_in(fp_attack, value_set=pa.array(cfg["known_attacks"], pa.string())))
    scores = table.column("CosScore").to_numpy()
    attacks = table.column(attack_column).to_numpy(zero_copy_only=False)
    labels = {name: parse_booleans(table.column(col).to_numpy(zero_copy_only=False), path, col)
              for name, col in metrics.LABELS.items()}
    try:
        results = metrics.pooled_eers(scores, attacks, labels, cfg["known_attacks"], cfg["unknown_filter"])
    except ValueError as exc:
        raise StageError(f"{path}: {exc}") from None
    out = eer_dir(cfg)
    write_text(out / "pooled_eer_kn.csv", metrics.format_pooled_csv(results["known"]))
    write_text(out / "pooled_eer_ukn.csv", metrics.format_pooled_csv(results["unknown"]))
    details = {scenario: {name: {"eer_percent": r.percent, "eer": r.eer, "threshold": r.threshold,
                                 "n_target": r.n_target, "n_nontarget": r.n_nontarget}
                          for name, r in res.items()} for scenario, res in results.items()}
    write_text(out / "pooled_eer_details.json", json.dumps(
        {"system": cfg["system"], "known_attacks": cfg["known_attacks"], "unknown_filter": cfg["unknown_filter"],
         "rows": int(len(scores)), **details}, indent=2) + "\n")
    print(f"{cfg['system']} pooled EER (%), unknown scenario filter: {cfg['unknown_filter']}")
    print(f"{'':10s}{'ATK':>8s}{'AM':>8s}{'VM':>8s}")
    for scenario in ("known", "unknown"):
        print(f"{scenario:10s}" + "".join(f"{results[scenario][n].percent:8.2f}" for n in metrics.LABELS))
    return StageResult([out / "pooled_eer_kn.csv", out / "pooled_eer_ukn.csv", out / "pooled_eer_details.json"])
