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


def load_failure(e: BaseException) -> str:
    """Why ``torch.load`` refused a file, on one line and without torch's advice to load it again
    with ``weights_only=False``: that would run whatever code the file carries, and rsdistill
    never does it."""
    text = str(e).strip()
    if "Weights only load failed" in text or "weights_only" in text:
        return ("it holds Python objects besides tensors, which are not loaded (unpickling them could "
                "run code): not a weights or checkpoint file that rsdistill reads")
    if "central directory" in text or "invalid load key" in text or "PytorchStreamReader" in text:
        return f"truncated, or not a PyTorch file ({text.splitlines()[0]})"
    return text.splitlines()[0] if text else type(e).__name__
