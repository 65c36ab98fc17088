"""Stage 1: embeddings of every enrollment utterance, one matrix per fingerprint.

Each distinct (attack, file) is extracted once even when several fingerprints list it;
under `reference` every row is kept in protocol order, since there batches (and so
embeddings) follow the published scripts' row order.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from ..protocols import audio_path, folder_state, protocol_files, read_enrollment
from ..stage_result import Skip, StageResult
from ..store import file_digest, ids_path, save_embeddings
from .extractor import audio_identity, build_extractor, extraction_identity, log


@dataclass(frozen=True)
class EnrollmentPlan:
    protocols: list
    utterances: list  # extraction Utterances, in extraction order
    rows_of: list[list[int]]  # per protocol: utterance index of each row
    segments: list[range]  # per protocol: its utterances (batches never cross files under `reference`)


def plan(cfg) -> EnrollmentPlan:
    folder = cfg["enroll_protocol_dir"]
    return _plan(folder, cfg["enroll_audio"], cfg["database_path"], cfg["input_policy"], folder_state(Path(folder)))


@functools.lru_cache(maxsize=2)
def _plan(protocol_dir: str, template: str, database_path: str, policy: str, state: tuple) -> EnrollmentPlan:
    """(`state`: the protocol files' sizes and times, so that an edited file is read again.)"""
    from ..extraction import Utterance

    protocols = [read_enrollment(p) for p in protocol_files(Path(protocol_dir))]
    utterances, rows_of, segments, index = [], [], [], {}
    for protocol in protocols:
        rows, start = [], len(utterances)
        for file, attack, line in zip(protocol.files, protocol.attacks, protocol.lines):
            key = (attack, file)
            if policy == "reference" or key not in index:
                index[key] = len(utterances)
                utterances.append(Utterance(attack, file, audio_path(template, database_path, attack, file),
                                            protocol.path, line))
            rows.append(index[key])
        segments.append(range(start, len(utterances)))
        rows_of.append(rows)
    return EnrollmentPlan(protocols, utterances, rows_of, segments)


def inputs(cfg) -> dict:
    p = plan(cfg)
    return {**extraction_identity(cfg), "enroll_protocols": {x.path.name: file_digest(x.path) for x in p.protocols},
            "audio": audio_identity(p.utterances)}


def run(ctx) -> StageResult | None:
    p = plan(ctx.cfg)
    log.info("%d enrollment protocol(s), %d rows, %d utterance(s) to extract",
             len(p.protocols), sum(map(len, p.rows_of)), len(p.utterances))
    result = build_extractor(ctx).extract(p.utterances, ctx.work_dir, p.segments, desc="enrollment")
    if result is None:  # another rank assembles and writes
        return None
    outputs, skipped = [], []
    dim = result.embeddings.shape[1]
    for protocol, rows in zip(p.protocols, p.rows_of):
        kept = [i for i in rows if i not in result.failed]
        # a row's skip names its own protocol line, even when another file listed the utterance first
        skipped += [Skip(1, str(protocol.path), line, p.utterances[i].attack, p.utterances[i].file, result.failed[i])
                    for i, line in zip(rows, protocol.lines) if i in result.failed]
        npy = ctx.paths.enrollment(protocol.fingerprint)
        save_embeddings(ctx.output(npy), result.embeddings[kept].reshape(len(kept), dim),
                        [p.utterances[i].key for i in kept])
        outputs += [npy, ids_path(npy)]
    log.info("wrote %d fingerprint matrices to %s", len(p.protocols), ctx.paths.enrollment_dir)
    if skipped:
        log.warning("skipped %d enrollment row(s) (%d utterance(s))", len(skipped), len(result.failed))
    return StageResult(outputs, skipped)
