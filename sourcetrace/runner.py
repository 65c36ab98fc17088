"""Running one declared stage: lock, checks, body, commit.

1. Every upstream stage must be current (transitively, see `provenance`), or the run
   refuses naming the first one to re-run (`--allow-stale` uses them anyway); an upstream
   stage with no record whose files are there is read as made elsewhere, with a warning.
   Nothing is written before this check passes.
2. Take the stage's lock (a second run of the same stage on the same outputs refuses at
   once, naming the running process), finish a commit a killed run had decided.
3. Compute the stage's identity once (its declaration in `registry.py`); its digest names
   the stage's work folder: work folders of any other identity are removed, and so is the
   current one under `--force`. A stage that is current does nothing.
4. The body runs with a `Context`: the config keys the stage declares and nothing else,
   its staging folder, its keyed work folder, the torchrun world. A failed body leaves the
   previous outputs, their record and the work folder (to resume) as they were.
5. Rank 0 commits the new outputs and their record together.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path

from . import provenance, ranks
from .errors import StageError
from .registry import STAGES, Stage
from .stage_result import StageResult
from .store import Paths, os_error, remove_parts, remove_tree

log = logging.getLogger("sourcetrace")


class StageConfig(Mapping):
    """A read-only view of the config holding only the keys a stage declares.

    Reading any other key is a programming error, raised at once, so a stage cannot depend
    on a value its record does not track."""

    def __init__(self, cfg: dict, stage: Stage):
        self._cfg, self._stage = cfg, stage

    def __getitem__(self, key: str):
        if key not in self._stage.keys:
            raise KeyError(f"{self._stage.hint} read config key {key!r}, which it does not declare in "
                           f"sourcetrace/registry.py")
        return self._cfg[key]

    def __iter__(self):
        return iter(self._stage.keys)

    def __len__(self) -> int:
        return len(self._stage.keys)


class Context:
    """What a stage body gets: its config view, where to write, the world, `force`, the work
    folder keyed by its identity (`work_dir`: chunks, training state) and, on rank 0, the
    records of the upstream stages it reads (`upstream[u]`; None: files made elsewhere)."""

    def __init__(self, stage: Stage, cfg: StageConfig, paths: Paths, world: ranks.World, force: bool,
                 key: str, upstream: dict[int, dict | None]):
        self.stage, self.cfg, self.paths, self.world, self.force = stage, cfg, paths, world, force
        self.key, self.upstream = key, upstream
        self.work_dir = paths.work(stage.number) / key
        self.log = log

    def output(self, path: Path) -> Path:
        """Where to write the final output `path` during this run (its staging twin)."""
        staged = self.paths.staging(self.stage.number) / Path(path).relative_to(self.paths.output_dir)
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged


@contextlib.contextmanager
def stage_lock(paths: Paths, stage: Stage):
    """Exclusive per stage and output folder; the lock file names its holder."""
    path = paths.lock(stage.number)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StageError(f"{path}: {stage.hint} is already running for {paths.system} in {paths.output_dir} "
                         f"({holder}); wait for it to finish or stop it") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    try:
        yield
    finally:
        handle.close()


def _check_output_dir(paths: Paths) -> None:
    if paths.output_dir.exists() and not paths.output_dir.is_dir():
        raise StageError(f"{paths.output_dir}: output_dir is a file, not a folder")


def _prepare_output_dir(paths: Paths) -> list[Path]:
    """Create the output and records folders; returns those it created (removed again when
    the run fails and they are still empty)."""
    out = paths.output_dir
    created = [p for p in (out, paths.records_dir) if not p.exists()]
    try:
        paths.records_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc) from None
    if not os.access(paths.records_dir, os.W_OK | os.X_OK):
        raise StageError(f"{out}: output folder not writable; choose another output_dir or fix the permissions")
    return created


def _reachable(reads: tuple[int, ...], paths: Paths, external: set[int]) -> list[int]:
    """The stages `reads` depend on, as their records say (a stage that never ran: as declared),
    less what lies behind files made elsewhere."""
    seen: set[int] = set()
    todo = [u for u in reads if u not in external]
    while todo:
        u = todo.pop()
        if u in seen:
            continue
        seen.add(u)
        record = provenance.load_record(paths, u)
        if record is None:  # never ran: the earliest stage to run may lie further up
            todo += list(STAGES[u].upstream)
        else:
            todo += [int(v) for v, read in record.get("upstream", {}).items() if read != provenance.MADE_ELSEWHERE]
    return sorted(seen)


def _check_upstream(stage: Stage, checker: provenance.Checker, allow_stale: bool) -> dict[int, dict | None]:
    """Records of the direct upstream stages (None: read as made elsewhere), after checking
    everything they depend on. Reads only; refuses naming the first stage to re-run."""
    paths = checker.paths
    reads = stage.upstream_for(checker.cfg_of(stage.number))
    records = {u: provenance.load_record(paths, u) for u in reads}
    external = set()
    for u, record in records.items():
        attribute = stage.made_elsewhere.get(u)
        if record is None and attribute and provenance.made_elsewhere_files(paths, attribute):
            log.warning("no record of %s for %s: reading %s as made elsewhere; its provenance is unknown "
                        "(recorded as such)", STAGES[u].hint, paths.system, getattr(paths, attribute))
            external.add(u)
    for u in _reachable(reads, paths, external):
        problem = checker.problem(u, as_upstream=True)
        if problem == provenance.NOT_RUN:
            raise StageError(f"{STAGES[u].hint} has not run for {paths.system} in {paths.output_dir} "
                             f"({problem}); run {STAGES[u].script} first")
        if problem and not allow_stale:
            raise StageError(f"{STAGES[u].hint} is out of date for {paths.system} in "
                             f"{paths.output_dir}: {problem}; run {STAGES[u].script} first "
                             f"(or pass --allow-stale to use its outputs anyway)")
        if problem:
            log.warning("using out-of-date %s (--allow-stale): %s", STAGES[u].hint, problem)
    return {u: None if u in external else records[u] for u in reads}


def clean_work(paths: Paths, stage: Stage, key: str, force: bool) -> None:
    """Keep only the work folder of the current identity (none under `force`), without the
    partial files a killed run left in it."""
    root = paths.work(stage.number)
    if not root.is_dir():
        return
    for child in root.iterdir():
        if child.name == key and not force:
            continue
        if child.name != key:
            log.info("removing %s: work of an earlier identity of %s", child, stage.hint)
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    removed = remove_parts(root)
    if removed:
        log.info("removed %d partial file(s) left by an interrupted run", removed)


def _undo_folders(paths: Paths, stage: Stage, created: list[Path]) -> None:
    """After a failed run: its staging folder goes, and the folders it created while empty."""
    shutil.rmtree(paths.staging(stage.number), ignore_errors=True)
    for folder in (paths.staging_root, paths.work(stage.number), paths.work_root):
        with contextlib.suppress(OSError):
            folder.rmdir()
    if paths.records_dir in created:
        paths.lock(stage.number).unlink(missing_ok=True)
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


def check_upstream(stage: Stage, cfg: dict, allow_stale: bool = False) -> dict[int, dict | None]:
    """What `run_stage` checks before `stage` runs on `cfg`, for tools that read the same inputs
    (`stage` may be a tool's own declaration, not in `STAGES`: see `sourcetrace.trace`)."""
    checker = provenance.Checker(lambda n: StageConfig(cfg, stage if n == stage.number else STAGES[n]),
                                 Paths.of(cfg))
    return _check_upstream(stage, checker, allow_stale)


def run_stage(stage: Stage, cfg: dict, force: bool = False, allow_stale: bool = False) -> bool:
    """Run `stage` unless it is current; returns False when it was and nothing ran."""
    paths = Paths.of(cfg)
    world = ranks.init_world(cfg["device"])
    cfg = dict(cfg, device=world.device(cfg["device"]))
    view = {n: StageConfig(cfg, STAGES[n]) for n in STAGES}
    checker = provenance.Checker(view.__getitem__, paths)
    decision, created, upstream, ident = None, [], {}, {}
    with contextlib.ExitStack() as stack:
        if world.is_main:
            try:
                _check_output_dir(paths)
                upstream = _check_upstream(stage, checker, allow_stale)  # before anything is written
                created = _prepare_output_dir(paths)
                stack.enter_context(stage_lock(paths, stage))
                if provenance.apply_staged(paths, stage.number):
                    log.info("finished the commit of %s that an interrupted run had decided", stage.hint)
                shutil.rmtree(paths.staging(stage.number), ignore_errors=True)
                ident = checker.identity(stage.number)
                key = provenance.work_key(stage, ident)
                current = not force and checker.problem(stage.number) is None
                clean_work(paths, stage, key, force)
                decision = ("skip" if current else "run", key)
            except StageError as exc:
                _undo_folders(paths, stage, created)
                decision = ("error", str(exc))
        decision = world.broadcast(decision)
        if decision[0] == "error":
            raise StageError(decision[1]) if world.is_main else SystemExit(2)
        if decision[0] == "skip":
            if world.is_main:
                print(f"{stage.hint} is up to date for {paths.system} in {paths.output_dir}; --force recomputes")
            return False
        try:
            result: StageResult | None = stage.load()(
                Context(stage, view[stage.number], paths, world, force, decision[1], upstream))
        except BaseException:
            if world.is_main:
                _undo_folders(paths, stage, created)
            raise
        if not world.is_main:
            return True
        try:
            provenance.commit(paths, stage.number, ident, upstream, result.outputs, result.skipped, world.size)
        except OSError as exc:
            raise os_error(exc, resumable=True) from None
        for work in result.work:
            remove_tree(work, paths.work_root)
    if result.skipped:
        print(f"{stage.hint}: {len(result.skipped)} skipped (on_error=skip), listed in {paths.skipped_csv}")
    return True
