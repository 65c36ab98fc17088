"""Stage 2: each fingerprint is the plain arithmetic mean of its enrollment embeddings.

Rows stage 1 skipped (read from the skip manifest) are not in the mean; a fingerprint with
no row left is an error, or under `on_error: skip` a skip of its own.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import StageError
from ..protocols import protocol_files, read_enrollment
from ..registry import STAGES
from ..stage_result import Skip, StageResult
from ..store import file_digest, load_embeddings, read_skips, write_fingerprints

log = logging.getLogger("sourcetrace")


def inputs(cfg) -> dict:
    return {"enroll_protocols": {p.name: file_digest(p) for p in protocol_files(Path(cfg["enroll_protocol_dir"]))}}


def run(ctx) -> StageResult:
    skipped_rows = {(s.protocol, s.line) for s in read_skips(ctx.paths.skipped_csv, stage=1)}
    names, means, skipped = [], [], []
    for path in protocol_files(Path(ctx.cfg["enroll_protocol_dir"])):
        protocol = read_enrollment(path)
        npy = ctx.paths.enrollment(protocol.fingerprint)
        embeddings, ids = load_embeddings(npy, STAGES[1].hint)
        expected = [f"{a}\t{f}" for a, f, line in zip(protocol.attacks, protocol.files, protocol.lines)
                    if (str(protocol.path), line) not in skipped_rows]
        if ids != expected:
            raise StageError(f"{npy}: its utterances differ from {protocol.path}; run {STAGES[1].script} again")
        if not ids:
            reason = "no enrollment embedding left (every row skipped in stage 1)"
            if ctx.cfg["on_error"] != "skip":
                raise StageError(f"{protocol.path}: {reason}")
            skipped.append(Skip(2, str(protocol.path), None, protocol.attack, protocol.fingerprint, reason))
            continue
        names.append(protocol.fingerprint)
        means.append(embeddings.mean(axis=0, dtype=np.float64).astype(np.float32))
    if skipped_rows:
        log.warning("%d enrollment row(s) skipped in stage 1 are not in the averages", len(skipped_rows))
    if not names:
        raise StageError(f"{ctx.cfg['enroll_protocol_dir']}: no fingerprint has an enrollment embedding left")
    out = ctx.paths.fingerprint_csv
    write_fingerprints(ctx.output(out), names, means)
    log.info("wrote %d fingerprints (%d dims) to %s", len(names), means[0].shape[0], out)
    return StageResult([out], skipped)
