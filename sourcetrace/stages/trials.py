"""Stage 3: embeddings of every distinct trial utterance across all trial files, once.

Every trial file is validated in full first (header, labels, fingerprint of every row), so
a bad row stops the run before any extraction. Utterances come in order of first
appearance over the files in name order; under `reference`, in the order of the rows of
`reference_trial_file` (batches of consecutive rows, as the published scripts extracted
that one file), which must then list every utterance of every trial file.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import StageError
from ..protocols import (TRIAL_SUFFIX, audio_path, data_lines, folder_state, line_of, protocol_files,
                         read_trials, trial_fingerprint, validate_trials)
from ..stage_result import StageResult
from ..store.evaluation_table import REQUIRED_LABELS
from ..store import ids_path, save_embeddings
from .extractor import audio_identity, build_extractor, extraction_identity, log, skip_of


@dataclass(frozen=True)
class TrialPlan:
    files: list[Path]
    utterances: list


def plan(cfg, validate: bool = False) -> TrialPlan:
    """The distinct utterances to extract; with `validate`, every trial file is read in full
    first (the stage itself). The up-to-date checks of later stages need only the identity
    columns."""
    batching = cfg["reference_trial_file"] if cfg["input_policy"] == "reference" else None
    folder = cfg["trial_protocol_dir"]
    return _plan(folder, cfg["trial_audio"], cfg["database_path"], batching, validate,
                 folder_state(Path(folder), trials=True))


def _ordered(files: list[Path], batching: str | None):
    """The trial files with the batching file first (its rows give the utterance order)."""
    if batching is None:
        return files
    first = [f for f in files if trial_fingerprint(f)[0] == batching]
    if not first:
        raise StageError(f"{files[0].parent}: reference_trial_file is {batching!r}, but there is no "
                         f"{batching}{TRIAL_SUFFIX}.txt; set reference_trial_file to one of its trial files")
    return first + [f for f in files if f != first[0]]


@functools.lru_cache(maxsize=2)
def _plan(protocol_dir: str, template: str, database_path: str, batching: str | None, validate: bool,
          state: tuple) -> TrialPlan:
    """(`state`: the protocol files' sizes and times, so that an edited file is read again.)"""
    from ..extraction import Utterance

    files = _ordered(protocol_files(Path(protocol_dir), trials=True), batching)
    utterances, seen = [], pa.array([], pa.string())
    protocols = (validate_trials(files, REQUIRED_LABELS) if validate else
                 (read_trials(f, identity_only=True) for f in files))
    for protocol in protocols:  # one file in memory at a time
        keys = protocol.utterance_keys
        distinct = pc.unique(keys)
        new = distinct.filter(pc.invert(pc.is_in(distinct, value_set=seen)))
        if not len(new):
            continue
        if batching is not None and len(seen):
            row = int(pc.index_in(new[0], value_set=keys).as_py())
            raise StageError(f"{protocol.path}:{line_of(protocol.path, row)}: trial utterance "
                             f"{new[0].as_py().replace(chr(9), ' ')!r} is not in {files[0].name}, whose rows "
                             f"give the `reference` batching (reference_trial_file)")
        lines = data_lines(protocol.path)[pc.index_in(new, value_set=keys).to_numpy()]  # first row of each
        for key, line in zip(new.to_pylist(), lines.tolist()):
            attack, file = key.split("\t", 1)
            utterances.append(Utterance(attack, file, audio_path(template, database_path, attack, file),
                                        protocol.path, line))
        seen = pa.concat_arrays([seen, new])
    return TrialPlan(files, utterances)


def inputs(cfg) -> dict:
    """The trial utterances in output order and their audio: not the protocols' labels or
    row order, so a label edit leaves stage 3 current (stage 4 reads the labels)."""
    import hashlib
    p = plan(cfg)
    order = hashlib.sha256("".join(f"{u.attack}\t{u.file}\n" for u in p.utterances).encode()).hexdigest()
    found = {**extraction_identity(cfg), "trial_utterances": order, "audio": audio_identity(p.utterances)}
    if cfg["input_policy"] == "reference":
        found["reference_trial_file"] = cfg["reference_trial_file"]
    return found


def run(ctx) -> StageResult | None:
    utterances = plan(ctx.cfg, validate=True).utterances
    log.info("%d distinct trial utterance(s)", len(utterances))
    result = build_extractor(ctx).extract(utterances, ctx.work_dir, desc="trials")
    if result is None:  # another rank assembles and writes
        return None
    kept = [i for i in range(len(utterances)) if i not in result.failed]
    out = ctx.paths.trial_embeddings
    save_embeddings(ctx.output(out), result.embeddings[kept], [utterances[i].key for i in kept])
    log.info("wrote %s", out)
    skipped = [skip_of(3, utterances[i], reason) for i, reason in sorted(result.failed.items())]
    if skipped:
        log.warning("skipped %d trial utterance(s)", len(skipped))
    return StageResult([out, ids_path(out)], skipped)
