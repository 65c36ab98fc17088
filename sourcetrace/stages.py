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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from . import metrics, provenance
from .errors import StageError
from .protocols import (FALSE_VALUES, TRUE_VALUES, check_unique_trials, column_index, data_lines, line_of, parse_booleans,
                        protocol_files, read_enrollment, read_trials, trial_fingerprint)
from .scoring import similarity
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


def build_extractor(cfg: dict):
    # torch is imported here, not at module level: stages 2, 4 and 5 start faster without it
    import models
    from .extraction import Extractor, resolve_device

    device = resolve_device(cfg["device"])
    try:
        model = models.load_model(cfg["model_config"], cfg["model_path"], cfg["input_policy"], device)
    except models.CheckpointError as exc:
        raise StageError(str(exc)) from None
    if cfg["input_policy"] == "reference":
        log.warning("input_policy 'reference': whole utterances zero-padded to the longest in each batch "
                    "of %d, as the published STOPA scripts did; embeddings then depend on batch "
                    "neighbours and batch size", cfg["batch_size"])
    log.info("%s: %s on %s, input policy %s", cfg["system"], cfg["model_path"], device, cfg["input_policy"])
    return Extractor(model, cfg["input_policy"], cfg["batch_size"], cfg["num_workers"], device,
                     on_error=cfg["on_error"], chunk_size=cfg["chunk_size"], precision=cfg["precision"],
                     max_seconds=cfg["max_seconds"],
                     signature=f"{Path(cfg['model_path']).resolve()}:{json.dumps(cfg['model_config'], sort_keys=True)}")


def read_enrollments(cfg: dict):
    return [read_enrollment(p) for p in protocol_files(Path(cfg["enroll_protocol_dir"]))]


def trial_paths(cfg: dict) -> list[Path]:
    return protocol_files(Path(cfg["trial_protocol_dir"]), trials=True)


# ---------------------------------------------------------------- stage 1

def extract_enrollment(cfg: dict, upstream: dict) -> StageResult:
    """Stage 1: embeddings of every enrollment utterance, one matrix per fingerprint."""
    from .extraction import Utterance, remove

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
                                            protocol.path, line))
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
    remove(result.work, work_dir(cfg))  # only now that the outputs are in place
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
        expected = [f"{a}\t{f}" for a, f in zip(protocol.attacks, protocol.files)
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
    from .extraction import Utterance, remove

    utterances = []
    seen = pa.array([], pa.string())
    for path in trial_paths(cfg):
        keys = read_trials(path, identity_only=True).utterance_keys
        distinct = pc.unique(keys)
        new = distinct.filter(pc.invert(pc.is_in(distinct, value_set=seen)))
        if not len(new):
            continue
        lines = data_lines(path)[pc.index_in(new, value_set=keys).to_numpy()]  # first row of each
        for key, line in zip(new.to_pylist(), lines.tolist()):
            attack, file = key.split("\t", 1)
            utterances.append(Utterance(attack, file, audio_path(cfg["trial_audio"], cfg, attack, file),
                                        path, line))
        seen = pa.concat_arrays([seen, new])
    log.info("%d distinct trial utterance(s)", len(utterances))
    extractor = build_extractor(cfg)
    result = extractor.extract(utterances, work_dir(cfg) / "stage3", desc="trials")
    kept = [i for i in range(len(utterances)) if i not in result.failed]
    save_embeddings(trial_embeddings(cfg), result.embeddings[kept], [utterances[i].key for i in kept])
    remove(result.work, work_dir(cfg))  # only now that the outputs are in place
    log.info("wrote %s", trial_embeddings(cfg))
    skipped = [_skip(3, u.where, u.attack, u.file, reason)
               for i, reason in sorted(result.failed.items()) for u in [utterances[i]]]
    if skipped:
        log.warning("skipped %d trial utterance(s); see %s", len(skipped), skipped_csv(cfg))
    return StageResult([trial_embeddings(cfg), ids_path(trial_embeddings(cfg))], skipped)


# ---------------------------------------------------------------- stage 4

def evaluation_columns(cfg: dict) -> Path:
    """Columnar copy of what stage 5 reads from the evaluation CSV (Arrow IPC, same rows)."""
    return output_dir(cfg) / f"{cfg['system']}_evaluation.arrow"


def score_trials(cfg: dict, upstream: dict) -> StageResult:
    """Stage 4: cosine score of every trial row of the known attacks' fingerprints.

    Trial files are processed one at a time (memory stays bounded at STOPA's 30 million
    rows); the CSV text of one file is written by a background thread while the next file
    is parsed and scored. Besides the CSV, the columns stage 5 needs go to an Arrow file.
    """
    fp_names, fp_matrix = read_fingerprints(fingerprint_csv(cfg))
    embeddings, keys = load_embeddings(trial_embeddings(cfg), "stage 3 (trials_embedding_extraction.py)")
    if fp_matrix.shape[1] != embeddings.shape[1]:
        raise StageError(f"{fingerprint_csv(cfg)} has {fp_matrix.shape[1]} dims but {trial_embeddings(cfg)} "
                         f"has {embeddings.shape[1]}; re-run stages 2-3 with the same system")
    id_keys = pc.SetLookupOptions(pa.array(keys, pa.string()))
    fp_keys = pc.SetLookupOptions(pa.array(fp_names))
    cosines = similarity(fp_matrix, embeddings)
    # rows left out upstream under on_error=skip: utterances of stage 3, fingerprints of stage 2
    skipped_utts = pa.array([f"{r['attack']}\t{r['file']}" for r in (upstream.get(3) or {}).get("skipped", [])],
                            pa.string())
    skipped_fps = pa.array([r["file"] for r in (upstream.get(2) or {}).get("skipped", [])], pa.string())
    known = set(cfg["known_attacks"])
    paths = [p for p in trial_paths(cfg) if trial_fingerprint(p)[1] in known]
    if not paths:
        raise StageError(f"{cfg['trial_protocol_dir']}: no trial files of the known attacks "
                         f"{', '.join(cfg['known_attacks'])}")
    header, rows, excluded = None, 0, 0
    out, columns_out = evaluation_csv(cfg), evaluation_columns(cfg)
    with atomic_path(out) as tmp, atomic_path(columns_out) as tmp_columns, \
            ThreadPoolExecutor(1) as background:
        writer = columns_writer = pending = None
        for protocol, utt_index in _with_utterance_index(paths, id_keys):
            path, table = protocol.path, protocol.table
            if header is None:
                header = table.column_names
                writer = pacsv.CSVWriter(tmp, table.schema.append(pa.field("CosScore", pa.float32())),
                                         write_options=pacsv.WriteOptions(quoting_style="none",
                                                                          quoting_header="none"))
            elif table.column_names != header:
                raise StageError(f"{path}:1: header differs from {paths[0].name}'s "
                                 f"({' '.join(table.column_names)} vs {' '.join(header)})")
            fingerprints, utterances = protocol.fingerprints, protocol.utterance_keys
            fp_index = pc.index_in(fingerprints, options=fp_keys)
            keep = np.ones(table.num_rows, dtype=bool)
            if len(skipped_utts) or len(skipped_fps):
                keep = ~(pc.is_in(utterances, value_set=skipped_utts).to_numpy(zero_copy_only=False)
                         | pc.is_in(fingerprints, value_set=skipped_fps).to_numpy(zero_copy_only=False))
            _require(fp_index, keep, fingerprints, path, "fingerprint {} has no enrollment (not in the fingerprint CSV)")
            _require(utt_index, keep, utterances, path, "trial utterance {} has no embedding; re-run stage 3")
            kept_rows = np.flatnonzero(keep)
            fp_index = fp_index.to_numpy(zero_copy_only=False)[kept_rows].astype(np.int64)
            utt_index = utt_index.to_numpy(zero_copy_only=False)[kept_rows].astype(np.int64)
            check_unique_trials(protocol, fp_index, utt_index, kept_rows)
            if len(kept_rows) < table.num_rows:
                excluded += table.num_rows - len(kept_rows)
                table, fingerprints = table.filter(keep), fingerprints.filter(keep)
            scores = pa.array(cosines[utt_index, fp_index])
            columns = pa.table({"AbstractModel": fingerprints, "ATK": table.column(protocol.attack_column),
                                **{c: protocol.targets[c][kept_rows] for c in metrics.LABELS.values()
                                   if c in protocol.targets},
                                "CosScore": scores})
            if columns_writer is None:
                columns_writer = pa.ipc.new_file(tmp_columns, columns.schema)
            if pending is not None:
                pending.result()  # at most one file's text in flight
            pending = background.submit(_write_both, writer, table.append_column("CosScore", scores),
                                        columns_writer, columns)
            rows += table.num_rows
        if pending is not None:
            pending.result()
        writer.close()
        columns_writer.close()
    log.info("scored %d trial rows from %d trial file(s) into %s", rows, len(paths), out)
    if excluded:
        log.warning("%d trial row(s) left out: their utterance or fingerprint was skipped upstream", excluded)
    return StageResult([out, columns_out])


def _with_utterance_index(paths: list[Path], id_keys: pc.SetLookupOptions, group_rows: int = 4_000_000):
    """Yield (protocol, index of each row's utterance in the trial store), file by file.

    Files are read in groups of about `group_rows` rows and looked up in one call per group:
    building the lookup table of the store's keys costs as much as looking up a file.
    """
    group: list = []

    def flush():
        keys = pa.chunked_array([c for protocol in group for c in protocol.utterance_keys.chunks], pa.string())
        found = pc.index_in(keys, options=id_keys)
        start = 0
        for protocol in group:
            yield protocol, found.slice(start, protocol.table.num_rows)
            start += protocol.table.num_rows
        group.clear()

    for path in paths:
        group.append(read_trials(path))
        if sum(p.table.num_rows for p in group) >= group_rows:
            yield from flush()
    if group:
        yield from flush()


def _write_both(writer, table: pa.Table, columns_writer, columns: pa.Table) -> None:
    writer.write_table(table)
    columns_writer.write_table(columns)


def _require(found: pa.ChunkedArray, keep: np.ndarray, values: pa.ChunkedArray, path: Path, message: str) -> None:
    """Error naming the first kept row whose lookup found nothing."""
    if found.null_count:
        missing = np.flatnonzero(found.is_null().to_numpy(zero_copy_only=False) & keep)
        if len(missing):
            row = int(missing[0])
            raise StageError(f"{path}:{line_of(path, row)}: " + message.format(repr(values[row].as_py())))


def read_evaluation(path: Path, known_attacks: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Scores, known-attack flags and target labels of the rows stage 5 pools.

    Reads only the columns it needs; attacks and fingerprints as dictionaries and targets as
    booleans, so 30 million rows fit in little memory. Rows of fingerprints whose attack is
    not in `known_attacks` are dropped (stage 4 may have scored a superset).
    """
    if not path.is_file():
        raise StageError(f"{path}: not found; run stage 4 (cosine_sim.py) first")
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split(",")
    attack_column = header[column_index(header, "ATK", 4, path)]
    needed = [attack_column, *metrics.LABELS.values(), "CosScore"]
    missing = [c for c in needed if c not in header]
    if missing:
        raise StageError(f"{path}:1: missing column(s) {', '.join(missing)}")
    if "AbstractModel" in header:
        needed.append("AbstractModel")
    dictionary = pa.dictionary(pa.int32(), pa.string())
    # scores were written as float32: read them back as exactly those values
    types = {attack_column: dictionary, "AbstractModel": dictionary, "CosScore": pa.float32(),
             **{c: pa.bool_() for c in metrics.LABELS.values()}}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=needed, column_types={c: types[c] for c in needed},
            true_values=list(TRUE_VALUES), false_values=list(FALSE_VALUES)))
    except pa.ArrowInvalid:  # find and name the offending line
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=needed, column_types={c: pa.string() for c in needed}))
        for column in metrics.LABELS.values():
            parse_booleans(table.column(column), path, column)
        raise StageError(f"{path}: CosScore must be a number on every row") from None
    return _pooling_inputs(table, attack_column, known_attacks)


def read_evaluation_columns(path: Path, known_attacks: list[str]):
    """Same as `read_evaluation`, from stage 4's Arrow copy of the needed columns."""
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    missing = [c for c in metrics.LABELS.values() if c not in table.column_names]
    if missing:
        raise StageError(f"{path}: missing column(s) {', '.join(missing)} (not in the trial protocols)")
    return _pooling_inputs(table, "ATK", known_attacks)


def _pooling_inputs(table: pa.Table, attack_column: str, known_attacks: list[str]):
    known = pa.array(known_attacks, pa.string())

    def attack_is_known(column: pa.ChunkedArray, prefix: bool = False) -> np.ndarray:
        encoded = column.combine_chunks()
        if not pa.types.is_dictionary(encoded.type):
            encoded = encoded.dictionary_encode()
        names = encoded.dictionary
        if prefix:  # a fingerprint's attack is its name up to the first '-'
            names = pc.list_element(pc.split_pattern(names, "-", max_splits=1), 0)
        return pc.is_in(names, value_set=known).to_numpy(zero_copy_only=False)[encoded.indices.to_numpy()]

    if "AbstractModel" in table.column_names:  # pool the current known attacks' fingerprints only
        table = table.filter(attack_is_known(table.column("AbstractModel"), prefix=True))
    is_known = attack_is_known(table.column(attack_column))
    labels = {name: table.column(col).to_numpy() for name, col in metrics.LABELS.items()}
    return table.column("CosScore").to_numpy().astype(np.float64), is_known, labels


def pooled_eer(cfg: dict, upstream: dict) -> StageResult:
    """Stage 5: pooled EERs of the known and unknown scenarios, by ATK, AM and VM."""
    path = evaluation_csv(cfg)
    record = upstream.get(4)
    columns = evaluation_columns(cfg)
    if record and columns.name in record["outputs"] and provenance.outputs_intact(cfg, record):
        scores, is_known, labels = read_evaluation_columns(columns, cfg["known_attacks"])
    else:
        scores, is_known, labels = read_evaluation(path, cfg["known_attacks"])
    try:
        results = metrics.pooled_eers(scores, is_known, labels, cfg["unknown_filter"])
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
