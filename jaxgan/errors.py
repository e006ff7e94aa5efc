"""User-facing errors.

A `UserError` is a mistake in the input (a config value, a data folder, a workdir) that
the user can fix. `main.py` prints its message as one line on stderr and exits with
status 2, without a traceback; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """Bad input: the message says what was wrong and what to do."""


class DataError(UserError):
  """A dataset file is missing, truncated or fails its checksum."""
