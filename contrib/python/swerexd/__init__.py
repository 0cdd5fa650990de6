"""swerexd: a Python client for swerexd with SWE-ReX's runtime interface.

Switching from SWE-ReX takes one line:

    runtime = RemoteRuntime(host=..., port=..., auth_token=...)   # SWE-ReX
    runtime = swerexd.Runtime("tls://host:port", token=...)       # swerexd

Runtime is asynchronous (SWE-ReX's AbstractRuntime methods: is_alive,
create_session, run_in_session, close_session, execute, read_file,
write_file, upload, close; plus download, list_sessions, stream, stats
and history);
SyncRuntime is the same as blocking calls; local() starts a private daemon.
The request, response and exception classes are SWE-ReX's, by name and
fields, as plain dataclasses.
"""

from .exceptions import *  # noqa: F401,F403
from .exceptions import __all__ as _exceptions_all
from .local import LocalDaemon, find_swerexd, local
from .models import *  # noqa: F401,F403
from .models import __all__ as _models_all
from .attach import Attachment, key_bytes
from .runtime import Runtime, Stream
from .sync import SyncAttachment, SyncRuntime, SyncStream

__version__ = "0.1.0"

__all__ = ["Runtime", "SyncRuntime", "Stream", "SyncStream", "Attachment",
           "SyncAttachment", "key_bytes", "local", "LocalDaemon",
           "find_swerexd", *_models_all, *_exceptions_all]
