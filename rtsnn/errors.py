"""The package's error classes: every *expected* failure of rtsnn derives from :class:`RtsnnError`.

An expected failure is one the user can fix: a bad config, model file, recording, option or
stream, a missing optional extra, training that diverged. Its message is written for the
user and names the file, key, node or stream (one line; a config check may list several
problems, one per line). ``except RtsnnError`` catches all of them; anything else that
escapes a command is a bug (the CLI reports it as an internal error, see :mod:`rtsnn.cli`).

Each package error also stays the builtin it always was, so existing ``except ValueError``
(or ``RuntimeError`` / ``ImportError``) callers keep working::

    RtsnnError(Exception)                       exit_status 2
    |- RtsnnValueError(RtsnnError, ValueError)  ConfigError, YamlLimitError, GraphError,
    |                                           ModelFileError, XdfError, StreamMismatchError, ...
    |- RtsnnRuntimeError(RtsnnError, RuntimeError)  TrainingDiverged
    |  `- SessionFailed                         exit_status 1: a session that failed while running
    `- RtsnnImportError(RtsnnError, ImportError)    MissingExtraError

``exit_status`` is what ``rtsnn`` exits with when the error ends a command.
"""

from __future__ import annotations


class RtsnnError(Exception):
    """Base of every expected failure of the package; ``str(err)`` is the user's message."""

    exit_status: int = 2


class RtsnnValueError(RtsnnError, ValueError):
    """Bad input: a config, file, option, graph or stream that does not fit."""


class RtsnnRuntimeError(RtsnnError, RuntimeError):
    """A run that could not go on (e.g. training diverged)."""


class RtsnnImportError(RtsnnError, ImportError):
    """An optional package a feature needs is not installed."""


class SessionFailed(RtsnnRuntimeError):
    """A session that started and then failed while running (``rtsnn run`` / ``demo`` exit 1)."""

    exit_status = 1
