"""User-facing errors.

Anything a user can cause (a missing file, a wrong shape, a checkpoint of another model) raises
``AmcpruneError``; the CLI turns it into one line on stderr and exit code 2. Everything else is a bug
and keeps its traceback.
"""


class AmcpruneError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""
