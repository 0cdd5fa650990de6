"""Requests and responses, named and shaped like SWE-ReX's runtime models.

Plain dataclasses (no pydantic): the class names, field names and defaults
are SWE-ReX's (swerex.runtime.abstract), so code written against SWE-ReX's
AbstractRuntime builds the same objects. Fields that only swerexd has come
after SWE-ReX's and have defaults, so positional use stays compatible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

__all__ = [
    "IsAliveResponse",
    "CreateBashSessionRequest", "CreateSessionRequest", "SessionLimits",
    "CreateBashSessionResponse", "CreateSessionResponse",
    "BashAction", "BashInterruptAction", "Action",
    "BashObservation", "Observation",
    "CloseBashSessionRequest", "CloseSessionRequest",
    "CloseBashSessionResponse", "CloseSessionResponse",
    "Command", "CommandResponse",
    "ReadFileRequest", "ReadFileResponse",
    "WriteFileRequest", "WriteFileResponse",
    "UploadRequest", "UploadResponse",
    "DownloadRequest", "DownloadResponse",
    "SessionInfo", "CloseResponse",
    "HistogramBucket", "ConnStats", "Stats", "HistoryEntry", "History",
]


@dataclass
class IsAliveResponse:
    """Whether the daemon answers; bool() of it is is_alive."""

    is_alive: bool
    message: str = ""

    def __bool__(self) -> bool:
        return self.is_alive


@dataclass
class SessionLimits:
    """Resource limits of a session (swerexd); None is no limit, 0 is refused.

    Per process, for bash and every program it starts (rlimits, soft = hard
    except CPU, whose hard limit is one second above so that SIGXCPU comes
    first): cpu_seconds, address_space (bytes), nproc (processes of the
    daemon's user; no effect on a root daemon), file_size (bytes). For the
    session as a whole, in a cgroup v2 group of its own (the daemon needs a
    delegated cgroup, else ResourceExhaustedError at creation): memory
    (bytes, swap closed) and pids. A command ended by cpu_seconds, file_size,
    memory or pids raises LimitExceededError (extra_info["limit"]).
    """

    cpu_seconds: Optional[int] = None
    address_space: Optional[int] = None
    nproc: Optional[int] = None
    file_size: Optional[int] = None
    memory: Optional[int] = None
    pids: Optional[int] = None


@dataclass
class CreateBashSessionRequest:
    """Start a bash session (SWE-ReX's, same fields).

    startup_timeout: seconds for the rc and startup_source files. SWE-ReX's
    default is 1.0; here None leaves it to the daemon (10 s), since many
    sessions started at once on a busy machine can take longer than 1 s.

    swerexd adds: rows and cols (terminal size, 1 to 10000; 0 is the default
    50x200); env (variables added to the session's environment; PS1,
    PROMPT_COMMAND and SWEREX_SESSION are refused); cwd (bash's directory,
    "" the daemon's); inherit_env (start from the daemon's whole environment
    instead of a clean one: PATH, HOME, USER, LOGNAME, SHELL, LANG, LC_*, TZ).
    limits (swerexd): a SessionLimits, or None for none.
    """

    startup_source: list[str] = field(default_factory=list)
    session: str = "default"
    session_type: Literal["bash"] = "bash"
    startup_timeout: Optional[float] = None
    rows: int = 0
    cols: int = 0
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    inherit_env: bool = False
    limits: Optional[SessionLimits] = None


CreateSessionRequest = CreateBashSessionRequest


@dataclass
class CreateBashSessionResponse:
    """What the rc and startup files printed."""

    output: str = ""
    session_type: Literal["bash"] = "bash"


CreateSessionResponse = CreateBashSessionResponse


@dataclass
class BashAction:
    """Run a command in a session (SWE-ReX's BashAction).

    check: "raise" (a non-zero exit raises NonZeroExitCodeError), "silent"
    (the observation carries the exit code) or "ignore" (no exit code).
    max_output (swerexd): output cap in bytes; None is the daemon's default.
    no_output_timeout (swerexd): seconds without output after which
    NoOutputTimeoutError is raised (e.observation: the output so far) while
    the command keeps running. wait (swerexd): send no command, wait for the
    one still running (its exit code and check as a run's); on a session at
    its prompt, answer at once with what is pending and the last exit code
    (command stays required, as in SWE-ReX: pass command="").
    """

    command: str
    session: str = "default"
    timeout: Optional[float] = None
    is_interactive_command: bool = False
    is_interactive_quit: bool = False
    check: Literal["silent", "raise", "ignore"] = "raise"
    error_msg: str = ""
    expect: list[str] = field(default_factory=list)
    action_type: Literal["bash"] = "bash"
    max_output: Optional[int] = None
    no_output_timeout: Optional[float] = None
    wait: bool = False


@dataclass
class BashInterruptAction:
    """Interrupt what runs in a session: SIGINT n_retry times, timeout apart."""

    session: str = "default"
    timeout: float = 0.2
    n_retry: int = 3
    expect: list[str] = field(default_factory=list)
    action_type: Literal["bash_interrupt"] = "bash_interrupt"


Action = Union[BashAction, BashInterruptAction]


@dataclass
class BashObservation:
    """What a command printed and how it ended (SWE-ReX's BashObservation).

    swerexd adds: truncated (the output exceeded the cap, head and tail
    kept), output_bytes (bytes printed before truncation) and carried_over
    (leading bytes of output printed after an earlier observation ended, such
    as a timed-out command's late output).
    """

    output: str = ""
    exit_code: Optional[int] = None
    failure_reason: str = ""
    expect_string: str = ""
    session_type: Literal["bash"] = "bash"
    truncated: bool = False
    output_bytes: int = 0
    carried_over: int = 0


Observation = BashObservation


@dataclass
class CloseBashSessionRequest:
    session: str = "default"
    session_type: Literal["bash"] = "bash"


CloseSessionRequest = CloseBashSessionRequest


@dataclass
class CloseBashSessionResponse:
    session_type: Literal["bash"] = "bash"


CloseSessionResponse = CloseBashSessionResponse


@dataclass
class Command:
    """A one-off command, like subprocess.run() (SWE-ReX's Command).

    A list runs the program directly; a string needs shell=True. env, when
    given, is the whole environment (as subprocess.run's env). stdin
    (swerexd): bytes or str fed to the command; None gives /dev/null.
    """

    command: Union[str, list[str]]
    timeout: Optional[float] = None
    shell: bool = False
    check: bool = False
    error_msg: str = ""
    env: Optional[dict[str, str]] = None
    cwd: Optional[str] = None
    merge_output_streams: bool = False
    stdin: Union[bytes, str, None] = None
    max_output: Optional[int] = None


@dataclass
class CommandResponse:
    """What a one-off command printed and how it ended.

    exit_code is None when a signal ended it (signal says which).
    """

    stdout: str = ""
    stderr: str = ""
    exit_code: Optional[int] = None
    signal: int = 0
    failure_reason: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@dataclass
class ReadFileRequest:
    """Read a file; encoding and errors as for Path.read_text()."""

    path: str
    encoding: Optional[str] = None
    errors: Optional[str] = None


@dataclass
class ReadFileResponse:
    content: str = ""


@dataclass
class WriteFileRequest:
    """Replace a file atomically, creating missing parent directories.

    content may be str (written as UTF-8) or bytes.
    """

    content: Union[str, bytes]
    path: str
    mode: Optional[int] = None


@dataclass
class WriteFileResponse:
    bytes_written: int = 0


@dataclass
class UploadRequest:
    """Copy a local file or directory to the daemon's host."""

    source_path: str
    target_path: str


@dataclass
class UploadResponse:
    files: int = 0
    bytes: int = 0


@dataclass
class DownloadRequest:
    """Copy a file or directory from the daemon's host (swerexd only)."""

    source_path: str
    target_path: str


@dataclass
class DownloadResponse:
    is_directory: bool = False
    files: int = 0
    bytes: int = 0


@dataclass
class SessionInfo:
    """One session as list_sessions() reports it."""

    name: str
    pid: int
    state: str            # "starting", "idle", "running", "dead"
    created: float        # seconds since the epoch
    last_command: str = ""
    exit_status: int = 0  # raw wait status once dead


@dataclass
class CloseResponse:
    pass


@dataclass
class HistogramBucket:
    """A latency bucket: answers that took at most le seconds (cumulative)."""

    le: float             # math.inf for the last bucket
    count: int


@dataclass
class ConnStats:
    """One open connection, as stats() reports it."""

    id: int
    peer: str             # "HOST:PORT", or "unix:pid=N,uid=N"
    client_name: str
    requests: int
    bytes_in: int
    bytes_out: int
    connected: float      # seconds since the epoch


@dataclass
class Stats:
    """The daemon's statistics since it started (stats()). Bytes are frame
    bytes; command_latency is BashAction latency in seconds, cumulative
    buckets from 0.0005 s to 500 s and +Inf."""

    uptime: float
    daemon_version: str
    sessions: dict[str, int]   # "starting", "idle", "running", "dead"
    sessions_created: int
    commands: int
    executes: int
    requests: int
    errors: int
    bytes_in: int
    bytes_out: int
    command_latency: list[HistogramBucket]
    command_latency_count: int
    command_latency_sum: float
    connections: list[ConnStats]
    prometheus: str = ""       # the text exposition, with prometheus=True


@dataclass
class HistoryEntry:
    """One command of a session's history."""

    seq: int                   # 1 for the session's first command
    command: str               # its first 4096 bytes
    exit_code: Optional[int]   # None until it ended with a known code
    started: float             # seconds since the epoch
    duration: float            # seconds, to its last answer (or its end)
    output_bytes: int          # printed, before truncation
    failure_reason: str = ""   # "timeout", "interrupted", "session died", ...


@dataclass
class History:
    """A session's last commands, oldest first (history())."""

    entries: list[HistoryEntry]
    total: int                 # commands run in the session so far
