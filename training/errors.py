"""The one error type of the training package: bad data or a bad artifact."""

from __future__ import annotations


class DataError(ValueError):
    """Input data (or a model artifact) cannot be used; the message names the problem."""


class ArtifactError(DataError):
    """A model artifact directory is missing, damaged or incompatible."""
