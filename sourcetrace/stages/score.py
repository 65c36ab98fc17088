"""Stage 4: cosine score of every trial row of the known attacks' fingerprints.

One (trial utterance x fingerprint) cosine matrix, then one lookup per row by key, never
by row order. Trial files are read in groups and written one at a time (memory stays
bounded at STOPA's 30 million rows); rows whose utterance or fingerprint was skipped
upstream are left out and counted.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StageError
from ..protocols import check_unique_trials, line_of, protocol_files, read_trial_files, trial_fingerprint
from ..registry import STAGES
from ..results import StageResult
from ..scoring import similarity
from ..testhooks import kill_point
from ..store import load_embeddings, read_fingerprints, read_skips
from ..store.scores import OPTIONAL_LABELS, REQUIRED_LABELS, EvaluationWriter

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
    from ..provenance import file_digest
    return {"trial_protocols": {p.name: file_digest(p) for p in known_trial_files(cfg)}}


def run(ctx) -> StageResult:
    paths = ctx.paths
    fp_names, fp_matrix = read_fingerprints(paths.fingerprint_csv)
    embeddings, keys = load_embeddings(paths.trial_embeddings, STAGES[3].hint)
    if fp_matrix.shape[1] != embeddings.shape[1]:
        raise StageError(f"{paths.fingerprint_csv} has {fp_matrix.shape[1]} dims but {paths.trial_embeddings} "
                         f"has {embeddings.shape[1]}; re-run stages 2-3 with the same system")
    cosines = similarity(fp_matrix, embeddings)
    lookups = pc.SetLookupOptions(pa.array(keys, pa.string())), pc.SetLookupOptions(pa.array(fp_names))
    skipped_utts = pa.array([f"{s.attack}\t{s.file}" for s in read_skips(paths.skipped_csv, 3)], pa.string())
    skipped_fps = pa.array([s.file for s in read_skips(paths.skipped_csv, 2)], pa.string())
    files = known_trial_files(ctx.cfg)
    rows = excluded = 0
    writer = None
    try:
        for protocol, utt_index in _with_utterance_index(files, lookups[0]):
            if writer is None:
                writer = EvaluationWriter(ctx.output(paths.evaluation_csv), ctx.output(paths.evaluation_arrow),
                                          protocol.table.column_names)
            table, columns, dropped = _score(protocol, utt_index, lookups[1], cosines, skipped_utts, skipped_fps)
            writer.write(table, columns)
            kill_point("stage4-written")
            rows, excluded = rows + table.num_rows, excluded + dropped
    finally:
        if writer is not None:
            writer.close()
    log.info("scored %d trial rows from %d trial file(s) into %s", rows, len(files), paths.evaluation_csv)
    if excluded:
        log.warning("%d trial row(s) left out: their utterance or fingerprint was skipped upstream", excluded)
    return StageResult([paths.evaluation_csv, paths.evaluation_arrow])


def _score(protocol, utt_index, fp_lookup, cosines, skipped_utts, skipped_fps):
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
    scores = pa.array(cosines[utt_index, fp_index])
    columns = pa.table({"AbstractModel": fingerprints, "ATK": table.column(protocol.attack_column),
                        **{c: protocol.targets[c][kept] for c in (*REQUIRED_LABELS, *OPTIONAL_LABELS)
                           if c in protocol.targets},
                        "CosScore": scores})
    return table.append_column("CosScore", scores), columns, dropped


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

    for protocol in read_trial_files(paths):
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
