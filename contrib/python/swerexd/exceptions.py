"""Exceptions, with SWE-ReX's class names and bases where SWE-ReX has them.

Every exception raised for a daemon error carries:
  extra_info   the daemon's details (dict of str: bash_stdout and bash_stderr
               for a syntax error, exit_code, path, errno, ...)
  kind         the daemon's ErrorKind name, e.g. "COMMAND_TIMEOUT"
  observation  the BashObservation so far (timeouts, non-zero exits), or None
  response     the CommandResponse of a failed execute(), or None
File errors also derive from the matching builtin (FileNotFoundError, ...),
as SWE-ReX's local runtime raises those.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "SwerexException", "SessionNotInitializedError", "NonZeroExitCodeError",
    "BashIncorrectSyntaxError", "CommandTimeoutError", "NoExitCodeError",
    "SessionExistsError", "SessionDoesNotExistError", "SessionBusyError",
    "SessionDiedError", "SessionStartError", "CommandInterruptedError",
    "InvalidRequestError", "UnsupportedVersionError", "ResourceExhaustedError",
    "InternalError", "ProtocolError", "RemoteFileNotFoundError",
    "RemoteIsADirectoryError", "RemoteNotADirectoryError",
    "RemotePermissionError", "NoSpaceError", "RemoteFileError",
    "UnauthenticatedError", "SwerexConnectionError", "DisconnectedError",
    "NoOutputTimeoutError", "LimitExceededError", "error_class",
]


class SwerexException(Exception):
    """Any exception raised by swerexd's client (SWE-ReX's base class)."""

    kind = "UNSPECIFIED"

    def __init__(self, message: str = "", *, extra_info: Optional[dict[str, Any]] = None,
                 observation: Any = None, response: Any = None):
        super().__init__(message)
        self.message = message
        self.extra_info = dict(extra_info) if extra_info else {}
        self.observation = observation
        self.response = response


class SessionNotInitializedError(SwerexException, RuntimeError):
    kind = "SESSION_NOT_INITIALIZED"


class NonZeroExitCodeError(SwerexException, RuntimeError):
    kind = "NON_ZERO_EXIT_CODE"


class BashIncorrectSyntaxError(SwerexException, RuntimeError):
    kind = "BASH_INCORRECT_SYNTAX"


class CommandTimeoutError(SwerexException, RuntimeError, TimeoutError):
    kind = "COMMAND_TIMEOUT"


class NoExitCodeError(SwerexException, RuntimeError):
    kind = "NO_EXIT_CODE"


class SessionExistsError(SwerexException, ValueError):
    kind = "SESSION_EXISTS"


class SessionDoesNotExistError(SwerexException, ValueError):
    kind = "SESSION_DOES_NOT_EXIST"


class SessionBusyError(SwerexException, RuntimeError):
    """A command still runs in the session (e.g. after a timeout)."""

    kind = "SESSION_BUSY"


class SessionDiedError(SwerexException, RuntimeError):
    """The session's bash exited; extra_info["exit_status"] tells how."""

    kind = "SESSION_DIED"


class SessionStartError(SwerexException, RuntimeError):
    kind = "SESSION_START_FAILED"


class CommandInterruptedError(SwerexException, RuntimeError):
    """A run was cut short by an interrupt; its output went to the interrupt."""

    kind = "INTERRUPTED"


class InvalidRequestError(SwerexException, ValueError):
    kind = "INVALID_REQUEST"


class UnsupportedVersionError(SwerexException, RuntimeError):
    kind = "UNSUPPORTED_VERSION"


class ResourceExhaustedError(SwerexException, RuntimeError):
    kind = "RESOURCE_EXHAUSTED"


class InternalError(SwerexException, RuntimeError):
    kind = "INTERNAL"


class ProtocolError(SwerexException, RuntimeError):
    kind = "PROTOCOL_ERROR"


class RemoteFileNotFoundError(SwerexException, FileNotFoundError):
    kind = "FILE_NOT_FOUND"


class RemoteIsADirectoryError(SwerexException, IsADirectoryError):
    kind = "IS_A_DIRECTORY"


class RemoteNotADirectoryError(SwerexException, NotADirectoryError):
    kind = "NOT_A_DIRECTORY"


class RemotePermissionError(SwerexException, PermissionError):
    kind = "PERMISSION_DENIED"


class NoSpaceError(SwerexException, OSError):
    kind = "NO_SPACE"


class RemoteFileError(SwerexException, OSError):
    kind = "FILE_ERROR"


class UnauthenticatedError(SwerexException, PermissionError):
    """The daemon refused the token (or none was given on TCP)."""

    kind = "UNAUTHENTICATED"


class NoOutputTimeoutError(CommandTimeoutError):
    """Nothing was printed for no_output_timeout seconds. The command keeps
    running: wait for it (BashAction(wait=True)), send it input or interrupt
    it. e.observation holds what it printed so far."""

    kind = "NO_OUTPUT_TIMEOUT"


class LimitExceededError(SwerexException, RuntimeError):
    """A session limit ended the command: extra_info["limit"] names it (cpu,
    file_size, memory, pids), extra_info["value"] gives its value;
    observation holds the output and the exit code."""

    kind = "LIMIT_EXCEEDED"


class SwerexConnectionError(SwerexException, ConnectionError):
    """The daemon could not be reached."""

    kind = "CONNECT"


class DisconnectedError(SwerexConnectionError):
    """The connection was lost with the request pending (and not resumed)."""

    kind = "DISCONNECTED"


_BY_KIND = {cls.kind: cls for cls in (
    NonZeroExitCodeError, BashIncorrectSyntaxError, CommandTimeoutError,
    NoExitCodeError, SessionExistsError, SessionDoesNotExistError,
    SessionBusyError, SessionDiedError, SessionStartError,
    CommandInterruptedError, InvalidRequestError, UnsupportedVersionError,
    ResourceExhaustedError, InternalError, ProtocolError,
    RemoteFileNotFoundError, RemoteIsADirectoryError, RemoteNotADirectoryError,
    RemotePermissionError, NoSpaceError, RemoteFileError, UnauthenticatedError,
    NoOutputTimeoutError,
    LimitExceededError,
)}


def error_class(kind: str) -> type[SwerexException]:
    """Give the exception class for a daemon ErrorKind name."""
    return _BY_KIND.get(kind, SwerexException)
