"""Stage 4: the score of every trial row of the known attacks' fingerprints.

One (trial utterance x fingerprint) score matrix of the configured back-end (`backend`:
cosine by default; see `sourcetrace.scoring`), then one lookup per row by key, never by row
order. The score column is `CosScore` under `cosine` and `Score` under any other back-end.
Trial files are read in groups and written one at a time (memory stays bounded at STOPA's
30 million rows); rows whose utterance or fingerprint was skipped upstream are left out and
counted.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StageError
from ..protocols import attack_of, check_unique_trials, line_of, protocol_files, read_trial_files, trial_fingerprint
from ..registry import STAGES
from ..stage_result import StageResult
from ..scoring import Enrollment, score_matrix
from ..testhooks import kill_point
from ..store import Paths, file_digest, load_embeddings, read_fingerprints, read_skips
from ..store.evaluation_table import LABEL_NAMES, OPTIONAL_LABELS, REQUIRED_LABELS, EvaluationWriter, score_column

log = logging.getLogger("sourcetrace")


def known_trial_files(cfg) -> list[Path]:
    files = protocol_files(Path(cfg["trial_protocol_dir"]), trials=True)
    attacks = {trial_fingerprint(p)[1] for p in files}
    absent = [a for a in cfg["known_attacks"] if a not in attacks]
    if absent:
        raise StageError(f"{cfg['trial_protocol_dir']}: known_attacks names {', '.join(absent)}, which has no "
                         f"trial file (<ATK>-<condition>_trials.txt) there")
    return [p for p in files if trial_fingerprint(p)[1] in cfg["known_attacks"]]


def inputs(cfg) -> dict:
    """The trial protocols' content, and the back-end's own setting where it has one."""
    found = {"trial_protocols": {p.name: file_digest(p) for p in known_trial_files(cfg)}}
    setting = {"asnorm": "asnorm_top_n", "knn": "knn_k"}.get(cfg["backend"])
    if setting:
        found[setting] = cfg[setting]
    return found


def upstream(cfg) -> tuple[int, ...]:
    """Stage 1's embeddings are read only by the back-ends that use enrollment utterances."""
    return (2, 3) if cfg["backend"] == "cosine" else (1, 2, 3)


def run(ctx) -> StageResult:
    return StageResult(write_scores(ctx.cfg, ctx.paths, ctx.output))


def enrollment_embeddings(paths: Paths, fingerprints: list[str], known_attacks: list[str]) -> Enrollment:
    """Stage 1's embeddings as the back-ends read them: every fingerprint's own rows, and
    the cohort of distinct known-attack utterances (first row of each (ATK, FileName) in the
    order of `fingerprints`, i.e. of the fingerprint CSV)."""
    known = set(known_attacks)
    members, cohort, cohort_attacks, seen, offset = [], [], [], set(), 0
    for name in fingerprints:
        embeddings, keys = load_embeddings(paths.enrollment(name), STAGES[1].hint)
        members.append(embeddings)
        for row, key in enumerate(keys):
            attack = key.partition("\t")[0]
            if attack in known and key not in seen:
                seen.add(key)
                cohort.append(offset + row)
                cohort_attacks.append(attack)
        offset += len(embeddings)
    every = np.concatenate(members) if members else np.zeros((0, 0), np.float32)
    return Enrollment(every[np.array(cohort, dtype=np.int64)], np.array(cohort_attacks, dtype=object), members,
                      [attack_of(name, paths.fingerprint_csv) for name in fingerprints])


def write_scores(cfg, paths: Paths, output) -> list[Path]:
    """Score every trial row of the known attacks' fingerprints with `cfg["backend"]`.

    `output(final_path)` names where to write each output (the runner's staging folder, or
    the comparison command's own area). Returns the final paths written.
    """
    fp_names, fp_matrix = read_fingerprints(paths.fingerprint_csv)
    embeddings, keys = load_embeddings(paths.trial_embeddings, STAGES[3].hint)
    if fp_matrix.shape[1] != embeddings.shape[1]:
        raise StageError(f"{paths.fingerprint_csv} has {fp_matrix.shape[1]} dims but {paths.trial_embeddings} "
                         f"has {embeddings.shape[1]}; re-run stages 2-3 with the same system")
    backend = cfg["backend"]
    enrollment = None
    if backend != "cosine":
        enrollment = enrollment_embeddings(paths, fp_names, cfg["known_attacks"])
        if enrollment.members and enrollment.members[0].shape[1] != embeddings.shape[1]:
            raise StageError(f"{paths.enrollment(fp_names[0])} has {enrollment.members[0].shape[1]} dims but "
                             f"{paths.trial_embeddings} has {embeddings.shape[1]}; re-run stages 1-3")
    try:
        scores = score_matrix(backend, fp_matrix, embeddings, enrollment,
                              asnorm_top_n=cfg["asnorm_top_n"], knn_k=cfg["knn_k"])
    except ValueError as exc:
        raise StageError(f"{paths.enrollment_dir}: {exc}") from None
    lookups = pc.SetLookupOptions(pa.array(keys, pa.string())), pc.SetLookupOptions(pa.array(fp_names))
    skipped_utts = pa.array([f"{s.attack}\t{s.file}" for s in read_skips(paths.skipped_csv, 3)], pa.string())
    skipped_fps = pa.array([s.file for s in read_skips(paths.skipped_csv, 2)], pa.string())
    files = known_trial_files(cfg)
    name = score_column(backend)
    rows = excluded = 0
    writer = None
    try:
        for protocol, utt_index in _with_utterance_index(files, lookups[0]):
            if writer is None:
                writer = EvaluationWriter(output(paths.evaluation_csv), output(paths.evaluation_arrow),
                                          protocol.table.column_names, name)
            table, columns, dropped = _score(protocol, utt_index, lookups[1], scores, skipped_utts, skipped_fps,
                                             name)
            writer.write(table, columns)
            kill_point("stage4-written")
            rows, excluded = rows + table.num_rows, excluded + dropped
    finally:
        if writer is not None:
            writer.close()
    log.info("scored (%s) %d trial rows from %d trial file(s) into %s", backend, rows, len(files),
             paths.evaluation_csv)
    if excluded:
        log.warning("%d trial row(s) left out: their utterance or fingerprint was skipped upstream", excluded)
    return [paths.evaluation_csv, paths.evaluation_arrow]


def _score(protocol, utt_index, fp_lookup, matrix, skipped_utts, skipped_fps, name):
    """The scored table of one trial file, its stage-5 columns, and how many rows were left out."""
    path, table = protocol.path, protocol.table
    fingerprints, utterances = protocol.fingerprints, protocol.utterance_keys
    fp_index = pc.index_in(fingerprints, options=fp_lookup)
    keep = np.ones(table.num_rows, dtype=bool)
    if len(skipped_utts) or len(skipped_fps):
        keep = ~(pc.is_in(utterances, value_set=skipped_utts).to_numpy(zero_copy_only=False)
                 | pc.is_in(fingerprints, value_set=skipped_fps).to_numpy(zero_copy_only=False))
    _require(fp_index, keep, fingerprints, path, "fingerprint {} has no enrollment (not in the fingerprint CSV)")
    _require(utt_index, keep, utterances, path, "trial utterance {} has no embedding; re-run stage 3")
    kept = np.flatnonzero(keep)
    fp_index = fp_index.to_numpy(zero_copy_only=False)[kept].astype(np.int64)
    utt_index = utt_index.to_numpy(zero_copy_only=False)[kept].astype(np.int64)
    check_unique_trials(protocol, fp_index, utt_index, kept)
    dropped = table.num_rows - len(kept)
    if dropped:
        table, fingerprints = table.filter(keep), fingerprints.filter(keep)
    scores = pa.array(matrix[utt_index, fp_index])
    # beside the IsTarget* labels, the utterance (its index in stage 3's store) and the AM and
    # VM names, for stage 5's attribution
    columns = pa.table({"AbstractModel": fingerprints, "ATK": table.column(protocol.attack_column),
                        **{c: protocol.targets[c][kept] for c in (*REQUIRED_LABELS, *OPTIONAL_LABELS)
                           if c in protocol.targets},
                        **{c: table.column(c) for c in LABEL_NAMES if c in table.column_names},
                        "Utterance": pa.array(utt_index.astype(np.int32)),
                        name: scores})
    return table.append_column(name, scores), columns, dropped


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

    for protocol in read_trial_files(paths, REQUIRED_LABELS):
        group.append(protocol)
        if sum(p.table.num_rows for p in group) >= group_rows:
            yield from flush()
    if group:
        yield from flush()


def _require(found, keep: np.ndarray, values, path: Path, message: str) -> None:
    """Error naming the first kept row whose lookup found nothing."""
    if found.null_count:
        missing = np.flatnonzero(found.is_null().to_numpy(zero_copy_only=False) & keep)
        if len(missing):
            row = int(missing[0])
            raise StageError(f"{path}:{line_of(path, row)}: " + message.format(repr(values[row].as_py())))
