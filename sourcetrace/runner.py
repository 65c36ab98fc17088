"""Running one declared stage: lock, checks, body, commit.

1. Take the stage's lock (a second run of the same stage on the same outputs refuses at
   once, naming the running process), finish a commit a killed run had decided, remove
   what a killed run left half-written.
2. Every upstream stage must be current (transitively, see `provenance`), or the run
   refuses naming the first one to re-run (`--allow-stale` uses them anyway). A stage that
   is itself current does nothing (`--force` recomputes).
3. The body runs with a `Context`: the config keys the stage declares and nothing else,
   its staging and work folders, the torchrun world.
4. Rank 0 commits the new outputs and their record together; the work folders go last.
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
from .registry import STAGES, Stage, closure
from .results import StageResult
from .store import Paths, os_error, remove_parts, remove_tree

log = logging.getLogger("sourcetrace")


class StageConfig(Mapping):
    """A read-only view of the config holding only the keys a stage declares.

    Reading any other key is a programming error, raised at once, so a stage cannot depend
    on a value its record does not track."""

    def __init__(self, cfg: dict, stage: Stage):
        self._cfg, self._stage = cfg, stage

    def __getitem__(self, key: str):
        if key not in self._stage.params:
            raise KeyError(f"{self._stage.hint} read config key {key!r}, which it does not declare in "
                           f"sourcetrace/registry.py")
        return self._cfg[key]

    def __iter__(self):
        return iter(self._stage.params)

    def __len__(self) -> int:
        return len(self._stage.params)


class Context:
    """What a stage body gets: its config view, where to write, the world, `force`."""

    def __init__(self, stage: Stage, cfg: StageConfig, paths: Paths, world: ranks.World, force: bool):
        self.stage, self.cfg, self.paths, self.world, self.force = stage, cfg, paths, world, force
        self.work_dir = paths.work(stage.number)
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


def _prepare_output_dir(paths: Paths) -> None:
    out = paths.output_dir
    if out.exists() and not out.is_dir():
        raise StageError(f"{out}: output_dir is a file, not a folder")
    try:
        paths.records_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc) from None
    if not os.access(paths.records_dir, os.W_OK | os.X_OK):
        raise StageError(f"{out}: output folder not writable; choose another output_dir or fix the permissions")


def _check_upstream(stage: Stage, checker: provenance.Checker, allow_stale: bool) -> dict[int, dict]:
    """Records of the direct upstream stages, after checking the whole closure."""
    records = {u: provenance.load_record(checker.paths, u) for u in closure(stage.number)}
    if stage.standalone_input and not any(records.values()):
        external = getattr(checker.paths, stage.standalone_input)
        if external.is_file():
            log.warning("no record of stages %s for %s: reading %s as a file made elsewhere",
                        ", ".join(map(str, closure(stage.number))), checker.paths.system, external)
            return {}
    for u in closure(stage.number):
        problem = checker.problem(u, as_upstream=True)
        if problem == provenance.NOT_RUN:
            raise StageError(f"{STAGES[u].hint} has not run for {checker.paths.system} in {checker.paths.output_dir} "
                             f"({problem}); run {STAGES[u].script} first")
        if problem and not allow_stale:
            raise StageError(f"{STAGES[u].hint} is out of date for {checker.paths.system} in "
                             f"{checker.paths.output_dir}: {problem}; run {STAGES[u].script} first "
                             f"(or pass --allow-stale to use its outputs anyway)")
        if problem:
            log.warning("using out-of-date %s (--allow-stale): %s", STAGES[u].hint, problem)
    return {u: records[u] for u in stage.upstream if records[u] is not None}


def run_stage(stage: Stage, cfg: dict, force: bool = False, allow_stale: bool = False) -> bool:
    """Run `stage` unless it is current; returns False when it was and nothing ran."""
    paths = Paths.of(cfg)
    world = ranks.init_world(cfg["device"])
    cfg = dict(cfg, device=world.device(cfg["device"]))
    view = {n: StageConfig(cfg, STAGES[n]) for n in STAGES}
    checker = provenance.Checker(view.__getitem__, paths)
    lock = stage_lock(paths, stage) if world.is_main else contextlib.nullcontext()
    decision = None
    with contextlib.ExitStack() as stack:
        if world.is_main:
            _prepare_output_dir(paths)
            stack.enter_context(lock)
            if provenance.apply_staged(paths, stage.number):
                log.info("finished the commit of %s that an interrupted run had decided", stage.hint)
            shutil.rmtree(paths.staging(stage.number), ignore_errors=True)
            removed = remove_parts(paths.work(stage.number)) if paths.work(stage.number).is_dir() else 0
            if removed:
                log.info("removed %d partial file(s) left by an interrupted run", removed)
            try:
                upstream = _check_upstream(stage, checker, allow_stale)
                params = checker.identity(stage.number)
                current = not force and checker.problem(stage.number) is None
                decision = ("skip" if current else "run", None)
            except StageError as exc:
                decision = ("error", str(exc))
        decision = world.broadcast(decision)
        if decision[0] == "error":
            raise StageError(decision[1]) if world.is_main else SystemExit(2)
        if decision[0] == "skip":
            print(f"{stage.hint} is up to date for {paths.system} in {paths.output_dir}; --force recomputes")
            return False
        if not world.is_main:
            upstream, params = {}, {}
        result: StageResult | None = stage.load()(Context(stage, view[stage.number], paths, world, force))
        if not world.is_main:
            return True
        try:
            provenance.commit(paths, stage.number, params, upstream, result.outputs, result.skipped, world.size)
        except OSError as exc:
            raise os_error(exc, resumable=True) from None
        for work in result.work:
            remove_tree(work, paths.work_root)
    if result.skipped:
        print(f"{stage.hint}: {len(result.skipped)} skipped (on_error=skip), listed in {paths.skipped_csv}")
    return True

