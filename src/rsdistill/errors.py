"""Errors a user can act on.

Every problem caused by input (a missing folder, a corrupt image, a bad config field) is raised as
:class:`RsDistillError` with a one-line message that names the file or field; the CLI prints it and
exits non-zero instead of showing a traceback.
"""


class RsDistillError(Exception):
    """A user-facing error; the message is one line and names the offending file or field."""


class ConfigError(RsDistillError):
    """A configuration field is unknown or has an invalid value."""


class DataError(RsDistillError):
    """A dataset folder, image or split file is missing or invalid."""


class CheckpointError(RsDistillError):
    """A checkpoint is missing, corrupt, or does not match the model or data it is used with."""


class TrainingDiverged(RsDistillError):
    """The loss became NaN or infinite; the last good state is in the run's last checkpoint."""
