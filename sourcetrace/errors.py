"""The one exception type for expected failures: the CLI prints it as one line, no traceback."""


class StageError(Exception):
    """A failure the user can act on (bad input, missing file, wrong checkpoint)."""
