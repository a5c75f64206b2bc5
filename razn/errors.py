"""The one exception hierarchy of razn.

Every error a user can cause (a bad file, a bad config, a bad manifest) is a
:class:`RaznError`. Its message is one line that names the file, what was expected,
what was found and, where there is one, the fix. The command line prints that line
and no traceback; anything that is not a ``RaznError`` is a bug in razn.
"""

from __future__ import annotations

from os import PathLike


class RaznError(Exception):
    """Base class of every expected razn failure.

    Args:
        message: what went wrong, expected versus actual, and the fix if known.
        path: the file the error is about, if any; it is prefixed to the message.
    """

    def __init__(self, message: str, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.reason = " ".join(str(message).split())  # always one line
        super().__init__(self.reason if self.path is None else f"{self.path}: {self.reason}")


class SlideError(RaznError):
    """A slide cannot be opened or read."""


class MaskError(RaznError):
    """A ground-truth mask cannot be read, or does not fit its slide."""


class AnnotationError(RaznError):
    """A polygon annotation file (GeoJSON, ASAP XML) cannot be parsed."""


class ManifestError(RaznError):
    """A dataset manifest is malformed or names missing files."""


class ConfigError(RaznError):
    """A configuration file or override is invalid."""


class CheckpointError(RaznError):
    """A checkpoint or run directory is missing, corrupt, tampered with or incompatible."""


class InferenceError(RaznError):
    """A network gave outputs that cannot be labels (NaN or infinite values)."""


class OutputError(RaznError):
    """A segmentation output folder is missing files or cannot be read."""
