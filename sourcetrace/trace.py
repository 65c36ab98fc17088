"""Tracing audio files: which enrolled attack made each one, or none of them.

    python trace_audio.py --config config/demo.conf PATH... [--condition nc-all] [--top 3]
                          [--threshold T|none] [--on-error skip] [--out results.csv|results.json]

`trace_audio(cfg, paths, ...)` does the work and returns the records (`Traced`); the script
prints them as a table and writes them with `--out`. The contract:

- **Files**: each PATH is an audio file, a folder (every file below it whose suffix names a
  format libsndfile reads, `audio.audio_suffixes`, in sorted order) or `@LIST` (a text file,
  one path a line, blank lines ignored; a folder there is searched too). Relative paths
  resolve against the current directory. A file given twice is traced once.
- **Embeddings**: the config's model, input policy, precision, `max_seconds`, through the
  extraction engine of stages 1 and 3 (batches, progress bar, chunks cached in
  `<output_dir>/.<system>_work/stagetrace/<key>/`, `key` the digest of the identity entries
  `registry.EMBEDDING_KEY` exactly as stages 1 and 3 key their caches, so no embedding of
  another model or policy is ever reused; a file's entry is keyed by its path, size and
  modification time). `--on-error` (default: the config's `on_error`) decides whether an
  unusable file is an error naming it or a record with its reason; it does not enter the
  up-to-date checks, so stage 1's own `on_error` stays as it was.
- **Scores**: the config's `backend` (`scoring.score_matrix`, with stage 1's enrollment
  embeddings for back-ends other than cosine) against every fingerprint of stage 2's CSV,
  exactly as stage 4 scores a trial utterance; kept: the fingerprints of the known attacks
  in one enrollment condition `<co|nc>-<N>` (`--condition`; default the largest present:
  `all` above any number, `nc` before `co` at equal size).
- **Ranking**: by score, highest first; ties go to the first fingerprint name in sorted
  order (as stage 5's attribution). Each fingerprint's acoustic model and vocoder are its
  attack's, from the `AcousticModel` / `VocoderModel` of the rows of the attack's own
  utterances in the fingerprint's trial file (empty when the file has no such columns).
- **Decision**: the best fingerprint's attack, or `unknown` when a threshold is in force and
  the best score is at or below it. The default threshold is `eer_threshold` of the
  condition's row of stage 5's `unknown_detection.csv`: the reference `compute_eer` on
  known-attack (positive) versus unknown-attack (negative) trials' best scores, whose
  threshold is the highest score it rejects (hence "at or below"). `--threshold T` sets one;
  `--threshold none` makes no `unknown` decision (the top attack is always named).
- **Checks**: stage 2 (with stage 1 under back-ends other than cosine) must be current for
  the config, and stage 5 too when its threshold is used, transitively as for every stage
  (`runner.check_upstream`); otherwise one line naming the stage to run. `--allow-stale`
  uses them anyway.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import os
from pathlib import Path
import numpy as np

from .errors import StageError
from .extraction.types import Utterance
from .registry import EMBEDDING, EMBEDDING_KEY, EXTRACTING, WHERE, Stage
from .store import Paths, write_text

log = logging.getLogger("sourcetrace")

DETECTION_FILE = "unknown_detection.csv"  # stage 5's, in `Paths.eer_dir` (see `attribution.write_attribution`)
THRESHOLD_SOURCES = ("stage5_eer", "option", "none")


@dataclasses.dataclass(frozen=True)
class Tool(Stage):
    """A command that reads stages' outputs without being a stage: declared as one (its config
    keys, the stages it reads, its identity and what keys its work folder) so that the same
    checks and keys serve it, but with no number in the pipeline and no record."""

    number: int | str

    @property
    def hint(self) -> str:
        return self.script


TOOL = Tool("trace", "trace_audio.py", "which enrolled attack made each audio file, or none of them",
            EMBEDDING + ("known_attacks", "backend"),
            WHERE + tuple(k for k in EXTRACTING if k != "database_path")
            + ("trial_protocol_dir", "asnorm_top_n", "knn_k"),
            (1, 2, 5), "sourcetrace.trace:trace_audio", "sourcetrace.stages.extractor:extraction_identity",
            made_elsewhere={1: "enrollment_dir", 2: "fingerprint_csv"}, work_key=EMBEDDING_KEY)


@dataclasses.dataclass(frozen=True)
class AudioFile(Utterance):
    """A file to trace; `origin` says where it was named (messages start with it)."""

    origin: str = ""

    @property
    def where(self) -> str:
        return self.origin


@dataclasses.dataclass
class Traced:
    """The result: one record per file (dicts with the keys `columns`), and what produced it.

    `threshold` is None when no `unknown` decision is made; `threshold_note` says in words
    where it came from; `labels` maps each attack of `fingerprints` to its (AM, VM)."""

    records: list[dict]
    columns: list[str]
    system: str
    backend: str
    condition: str
    fingerprints: list[str]
    labels: dict[str, tuple[str, str]]
    threshold: float | None
    threshold_source: str
    threshold_note: str
    top: int


def columns_for(top: int) -> list[str]:
    ranked = [f"{name}_{k}" for k in range(1, top + 1)
              for name in ("fingerprint", "attack", "acoustic_model", "vocoder", "score")]
    return ["file", "decision", "threshold", "threshold_source", "condition", *ranked, "error"]


def expand(arguments: list[str], on_error: str) -> list[AudioFile]:
    """The files named by `arguments` (see the module docstring), each once, in order."""
    from .audio import audio_suffixes
    suffixes = audio_suffixes()
    found: dict[str, AudioFile] = {}

    def add(path: Path, origin: str) -> None:
        resolved = os.path.abspath(path)
        if resolved not in found:
            found[resolved] = AudioFile("", resolved, Path(resolved), Path(origin), 0, origin)

    def folder(path: Path, origin: str) -> None:
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        if not files:
            raise StageError(f"{origin + ': ' if origin else ''}{path}: no audio files in this folder (suffixes libsndfile reads: "
                             f"{', '.join(sorted(suffixes))})")
        for p in files:
            add(p, f"{origin} (found in {path})" if origin else f"found in {path}")

    for argument in arguments:
        if argument.startswith("@"):
            listing = Path(argument[1:])
            try:
                lines = listing.read_text(encoding="utf-8-sig").splitlines()
            except FileNotFoundError:
                raise StageError(f"{listing}: list of files not found") from None
            except UnicodeDecodeError as exc:
                raise StageError(f"{listing}: not a text list of files ({exc.reason})") from None
            for number, line in enumerate(lines, start=1):
                name = line.strip()
                if not name:
                    continue
                path, origin = Path(name).expanduser(), f"{listing}:{number}"
                if path.is_dir():
                    folder(path, origin)
                elif path.is_file() or on_error == "skip":  # a missing one becomes its record's reason
                    add(path, origin)
                else:
                    raise StageError(f"{origin}: {path}: no such audio file")
        else:
            path = Path(argument).expanduser()
            if path.is_dir():
                folder(path, "")
            elif path.is_file():
                add(path, "command line")
            else:
                raise StageError(f"{argument}: no such file or folder")
    if not found:
        raise StageError(f"no audio files to trace in {' '.join(arguments)}")
    return list(found.values())


def reads(backend: str, threshold) -> tuple[int, ...]:
    """The stages a trace reads: 2 (fingerprints), 1 (enrollment embeddings, back-ends other
    than cosine), 5 (the threshold, when it is stage 5's)."""
    return (*((1,) if backend != "cosine" else ()), 2, *((5,) if threshold == "eer" else ()))


def conditions(names: list[str], known: list[str]) -> dict[str, list[int]]:
    """`<co|nc>-<N>` -> indices into `names` of the known attacks' fingerprints, sorted by name;
    ordered from the largest enrollment (`all`, then by size; `nc` before `co`)."""
    from .metrics.groups import FINGERPRINT_NAME, condition_groups
    found = {}
    for condition, size, codes in condition_groups(names):
        kept = sorted((int(c) for c in codes if FINGERPRINT_NAME.match(names[c])["attack"] in known),
                      key=lambda c: names[c])
        if kept:
            found[f"{condition}-{size}"] = kept

    def largest(name: str):
        condition, size = name.split("-", 1)
        return (size == "all", int(size) if size != "all" else 0, condition == "nc")
    return {name: found[name] for name in sorted(found, key=largest, reverse=True)}


def detection_threshold(paths: Paths, condition: str) -> tuple[float, str]:
    """(threshold, note) of `condition`'s row of stage 5's unknown_detection.csv."""
    path = paths.eer_dir / DETECTION_FILE
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run stage 5 (compute_eer_pooled.py --force) to write it, or "
                         f"pass --threshold T or --threshold none") from None
    kind, size = condition.split("-", 1)
    row = next((r for r in rows if r.get("condition") == kind and r.get("enroll_size") == size), None)
    if row is None:
        raise StageError(f"{path}: no row of condition {condition}; pass --threshold T or --threshold none")
    if not row.get("eer_threshold"):
        raise StageError(f"{path}: condition {condition} has no detection threshold ({row.get('n_known')} "
                         f"known-attack and {row.get('n_unknown')} unknown-attack trials: both are needed); "
                         f"pass --threshold T or --threshold none")
    threshold = float(row["eer_threshold"])
    return threshold, (f"the detection-EER threshold of {condition} from stage 5 ({_shown(str(path))}; EER "
                       f"{float(row['eer']):.2f} %, {row['n_known']} known and {row['n_unknown']} unknown trials)")


def attack_labels(trial_dir: Path, fingerprints: list[str]) -> dict[str, tuple[str, str]]:
    """attack -> (acoustic model, vocoder) of each fingerprint's attack, from the rows of the
    attack's own utterances in the fingerprint's trial file ("" where it names none)."""
    from .protocols import TRIAL_SUFFIX, attack_of, read_trials
    labels: dict[str, tuple[str, str]] = {}
    for name in fingerprints:
        path = Path(trial_dir) / f"{name}{TRIAL_SUFFIX}.txt"
        attack = attack_of(name, path)
        if attack in labels:
            continue
        if not path.is_file():
            raise StageError(f"{path}: trial file of fingerprint {name} not found (its AcousticModel and "
                             f"VocoderModel columns name the attack's acoustic model and vocoder)")
        protocol = read_trials(path)
        table = protocol.table
        own = np.flatnonzero(np.asarray(protocol.attacks.to_pylist(), dtype=object) == attack)
        found = []
        for column in ("AcousticModel", "VocoderModel"):
            values = sorted(set(np.asarray(table.column(column).to_pylist(), dtype=object)[own])) \
                if column in table.column_names and len(own) else []
            if len(values) > 1:
                raise StageError(f"{path}: the rows of attack {attack} name several {column} values "
                                 f"({', '.join(values)}); one per attack is needed")
            found.append(values[0] if values else "")
        labels[attack] = (found[0], found[1])
    return labels


def _work_key(cfg, paths: Paths, tool: Stage) -> str:
    from . import provenance
    return provenance.work_key(tool, provenance.identity(tool, cfg, paths))


def _embed(ctx, files: list[AudioFile], fingerprint_dim: int):
    """The files' embeddings (`Extraction`), through the engine of stages 1 and 3, cached in
    the tool's work folder `ctx.work_dir`."""
    from .stages.extractor import build_extractor
    extractor = build_extractor(ctx)
    if extractor.model.embedding_dim != fingerprint_dim:
        raise StageError(f"{ctx.paths.fingerprint_csv} has {fingerprint_dim} dims but {ctx.cfg['model_path']} "
                         f"embeds in {extractor.model.embedding_dim}; the fingerprints are of another model")
    return extractor.extract(files, ctx.work_dir, desc="tracing")


def _scores(cfg, paths: Paths, names: list[str], matrix: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """Every fingerprint's score of every embedding, as stage 4 computes a trial's."""
    from .scoring import score_matrix
    from .stages.score import enrollment_embeddings
    enrollment = None
    if cfg["backend"] != "cosine":
        enrollment = enrollment_embeddings(paths, names, cfg["known_attacks"])
    try:
        return score_matrix(cfg["backend"], matrix, embeddings, enrollment, asnorm_top_n=cfg["asnorm_top_n"],
                            knn_k=cfg["knn_k"])
    except ValueError as exc:
        raise StageError(f"{paths.enrollment_dir}: {exc}") from None


def trace_audio(cfg: dict, arguments: list[str], *, condition: str | None = None, top: int = 3,
                threshold: float | str | None = "eer", on_error: str | None = None,
                allow_stale: bool = False) -> Traced:
    """Trace the audio files named by `arguments` (module docstring) with the system of `cfg`
    (a config as `config.load_config` returns it).

    `threshold`: "eer" (stage 5's, the default), a number, or None (no `unknown` decision).
    `on_error`: "fail" or "skip" (default: the config's). Raises `StageError` for every
    expected failure."""
    from .protocols import attack_of
    from .ranks import World
    from .runner import Context, StageConfig, clean_work, check_upstream, stage_lock
    from .store import read_fingerprints

    if top < 1:
        raise StageError(f"--top {top}: at least 1")
    if not (threshold in ("eer", None) or isinstance(threshold, (int, float))):
        raise StageError(f"threshold {threshold!r}: 'eer', a number or None")
    paths = Paths.of(cfg)
    tool = dataclasses.replace(TOOL, upstream=reads(cfg["backend"], threshold))
    view = StageConfig(cfg, tool)
    on_error = on_error or view["on_error"]
    if on_error not in ("fail", "skip"):
        raise StageError(f"--on-error {on_error!r}: fail or skip")
    files = expand(arguments, on_error)
    check_upstream(tool, cfg, allow_stale)
    names, matrix = read_fingerprints(paths.fingerprint_csv)
    available = conditions(names, view["known_attacks"])
    if not available:
        raise StageError(f"{paths.fingerprint_csv}: no fingerprint of the known attacks named "
                         f"<ATK>-<co|nc>-<N>, so no enrollment condition to trace against")
    condition = condition or next(iter(available))
    if condition not in available:
        raise StageError(f"--condition {condition}: not among the known attacks' fingerprints in "
                         f"{paths.fingerprint_csv}; one of {', '.join(available)}")
    columns = available[condition]
    chosen = [names[c] for c in columns]
    if top > len(columns):
        log.warning("--top %d: condition %s has %d fingerprint(s); ranking them all", top, condition, len(columns))
        top = len(columns)
    labels = attack_labels(Path(view["trial_protocol_dir"]), chosen)
    if threshold == "eer":
        value, note = detection_threshold(paths, condition)
        source = "stage5_eer"
    elif threshold is None:
        value, note, source = None, "none: no `unknown` decision (--threshold none)", "none"
    else:
        value, note, source = float(threshold), "set with --threshold", "option"

    key = _work_key(view, paths, tool)
    # the tool's own `on_error` for its files; the checks above used the config's
    settings = StageConfig({**cfg, "on_error": on_error}, tool)
    with stage_lock(paths, tool):
        clean_work(paths, tool, key, force=False)
        extraction = _embed(Context(tool, settings, paths, World(), False, key, {}), files, matrix.shape[1])
    ok = [i for i in range(len(files)) if i not in extraction.failed]
    scores = _scores(view, paths, names, matrix, extraction.embeddings[ok])[:, columns] if ok else \
        np.zeros((0, len(columns)), np.float32)
    attacks = [attack_of(n, paths.fingerprint_csv) for n in chosen]
    records = []
    row_of = {i: r for r, i in enumerate(ok)}
    for i, f in enumerate(files):
        record = {"file": str(f.path), "decision": "", "threshold": value, "threshold_source": source,
                  "condition": condition}
        if i in extraction.failed:
            record["error"] = extraction.failed[i]
        else:
            row = scores[row_of[i]]
            order = np.argsort(-row, kind="stable")[:top]  # ties: the first name (columns are sorted)
            best = float(row[order[0]])
            record["decision"] = "unknown" if value is not None and best <= value else attacks[order[0]]
            for k, c in enumerate(order, start=1):
                am, vm = labels[attacks[c]]
                record.update({f"fingerprint_{k}": chosen[c], f"attack_{k}": attacks[c], f"acoustic_model_{k}": am,
                               f"vocoder_{k}": vm, f"score_{k}": float(row[c])})
            record["error"] = ""
        records.append(record)
    names_out = columns_for(top)
    records = [{c: r.get(c) for c in names_out} for r in records]
    return Traced(records, names_out, paths.system, view["backend"], condition, chosen, labels, value, source,
                  note, top)


def records_text(traced: Traced, suffix: str) -> str:
    """The records as CSV (header `traced.columns`; absent values empty, numbers as Python
    writes them, exactly) or JSON (a list of objects, absent values null)."""
    if suffix == ".json":
        return json.dumps(traced.records, indent=1) + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(traced.columns)
    for record in traced.records:
        writer.writerow(["" if record[c] is None else record[c] for c in traced.columns])
    return out.getvalue()


def format_table(traced: Traced, shown: list[str] | None = None) -> str:
    """The records for a terminal: a heading saying what was compared and which threshold,
    one line per file (decision, then the top fingerprints' attacks and scores), the attacks'
    acoustic models and vocoders, and the count of each decision."""
    shown = shown or [r["file"] for r in traced.records]
    width = min(max(len(s) for s in shown), 60)
    lines = [f"{traced.system}: {len(traced.records)} file(s) against the {len(traced.fingerprints)} fingerprint(s) "
             f"of condition {traced.condition} (back-end {traced.backend})"]
    if traced.threshold is None:
        lines.append(f"threshold {traced.threshold_note}")
    else:
        lines.append(f"threshold {traced.threshold:.4f}, {traced.threshold_note}: a best score at or below it "
                     "is `unknown`")
    lines.append("")
    lines.append(f"{'file':{width}s}  {'decision':9s}" + "".join(f"  {'top ' + str(k):14s}"
                                                                for k in range(1, traced.top + 1)))
    counts: dict[str, int] = {}
    for name, r in zip(shown, traced.records):
        name = name if len(name) <= width else "..." + name[-(width - 3):]
        if r["error"]:
            counts["skipped"] = counts.get("skipped", 0) + 1
            lines.append(f"{name:{width}s}  {'skipped':9s}  {r['error']}")
            continue
        counts[r["decision"]] = counts.get(r["decision"], 0) + 1
        ranked = "".join(f"  {r[f'attack_{k}']:6s} {r[f'score_{k}']:7.4f}" for k in range(1, traced.top + 1))
        lines.append(f"{name:{width}s}  {r['decision']:9s}{ranked}")
    lines.append("")
    lines.append("attacks: " + "; ".join(f"{a} = {am or '?'} + {vm or '?'}"
                                         for a, (am, vm) in sorted(traced.labels.items())))
    lines.append("decisions: " + ", ".join(f"{d} {n}" for d, n in sorted(counts.items(),
                                                                        key=lambda x: (x[0] in ("unknown", "skipped"), x[0]))))
    return "\n".join(line.rstrip() for line in lines)


def _threshold_argument(text: str):
    if text.lower() == "none":
        return None
    if text.lower() == "eer":
        return "eer"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number, 'eer' or 'none'") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: a finite number")
    return value


def _top_argument(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: an integer >= 1")
    return value


def parser() -> argparse.ArgumentParser:
    from .cli import add_common_arguments, epilog
    p = argparse.ArgumentParser(
        prog=TOOL.script, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog(),
        description="Which enrolled attack made each audio file, or none of them: embeds the files with\n"
                    "the system's model, scores them with its back-end against the fingerprints of one\n"
                    "enrollment condition and decides, with stage 5's detection-EER threshold, between\n"
                    "the best attack and `unknown`. Needs stage 2 (and stage 5 for its threshold)\n"
                    "current for the config.\n\nConfig keys it reads: " + ", ".join(TOOL.keys))
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="an audio file, a folder (searched recursively for audio libsndfile reads) or @LIST "
                        "(a text file, one path a line)")
    add_common_arguments(p, force=False)
    p.add_argument("--condition", metavar="CO|NC-N",
                   help="enrollment condition of the fingerprints, e.g. nc-all, co-10 (default: the largest)")
    p.add_argument("--top", type=_top_argument, default=3, metavar="K", help="fingerprints listed per file (3)")
    p.add_argument("--threshold", type=_threshold_argument, default="eer", metavar="T|none",
                   help="best score at or below T is `unknown`; default: the condition's detection-EER threshold "
                        "from stage 5's unknown_detection.csv; none: no `unknown` decision")
    p.add_argument("--on-error", choices=("fail", "skip"),
                   help="an unusable file stops the run (fail) or becomes a record with its reason (skip); "
                        "default: the config's on_error")
    p.add_argument("--out", metavar="FILE", help="also write the records as CSV (.csv) or JSON (.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    """The script `trace_audio.py`: one-line `error: ...` and exit status 2 for expected failures."""
    from .cli import guarded, require_checkpoint, setup_logging
    from .config import load_config
    args = parser().parse_args(argv)
    setup_logging(args.quiet)

    def action():
        suffix = Path(args.out).suffix.lower() if args.out else None
        if suffix not in (None, ".csv", ".json"):
            raise StageError(f"--out {args.out}: the name must end in .csv or .json")
        cfg = load_config(args.config, args.overrides, args.device)
        require_checkpoint(cfg)
        traced = trace_audio(cfg, args.paths, condition=args.condition, top=args.top, threshold=args.threshold,
                             on_error=args.on_error, allow_stale=args.allow_stale)
        if args.out:
            write_text(Path(args.out), records_text(traced, suffix))
        print(format_table(traced, [_shown(r["file"]) for r in traced.records]))
        if args.out:
            print(f"records: {args.out}")
    return guarded(TOOL.hint, action, resumable=True)


def _shown(path: str) -> str:
    """A path relative to the current directory when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
