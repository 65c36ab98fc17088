"""Chosen kill points for tests: `SOURCETRACE_TEST_KILL_AT=<point>` SIGKILLs the process there.

Tests kill a run at a named point (never after a sleep) to prove that an interrupted run
leaves previous outputs and records intact and that the next run cleans up or resumes.
Points: `commit` (new outputs staged and their record written, nothing moved into place
yet), `stage4-written` (stage 4 has written its first trial file's rows), `chunk-<N>`
(extraction, once this process has written its N-th chunk), `train-step-<N>` (stage 0,
before its N-th optimizer step of the run, counted over all epochs). The one test hook in
production code.
"""
import os
import signal


ENV = "SOURCETRACE_TEST_KILL_AT"


def kill_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
