#!/usr/bin/python3
"""Socket activation as a systemd .socket unit does it (Accept=no), for
test-activation.sh.

    test-activation.py SOCKET COMMAND [ARG]...

Binds and listens on the Unix socket SOCKET (mode 0600, like SocketMode=0600)
and prints "listening". Then reads commands on stdin, one a line:

    start   fork; in the child: the socket as fd 3, LISTEN_FDS=1,
            LISTEN_PID=<child pid>, LISTEN_FDNAMES=swerexd.socket, stdin
            /dev/null, stdout to stderr; exec COMMAND. Prints "started PID".
    wait    reap that child; prints "exit STATUS" (-N: killed by signal N).

The launcher keeps the socket (and its file) across the command's exits, so
clients that connect while no command runs wait in the backlog. It exits on
end of input, leaving the socket file behind as systemd does.
"""
import os
import socket
import sys

LISTEN_FDS_START = 3


def start(sock, argv):
    """Fork and exec argv with sock passed the systemd way; return the pid."""
    pid = os.fork()
    if pid != 0:
        return pid
    try:
        if sock.fileno() != LISTEN_FDS_START:
            os.dup2(sock.fileno(), LISTEN_FDS_START)
        os.set_inheritable(LISTEN_FDS_START, True)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(2, 1)
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()),
                   LISTEN_FDNAMES="swerexd.socket")
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        print("test-activation.py: %s: %s" % (argv[0], e), file=sys.stderr)
    os._exit(127)


def main():
    """Listen, then obey start and wait lines until end of input."""
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, argv = sys.argv[1], sys.argv[2:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    sock.bind(path)
    os.umask(old)
    sock.listen(128)
    print("listening", flush=True)
    child = None
    for line in iter(sys.stdin.readline, ""):
        word = line.strip()
        if word == "start":
            child = start(sock, argv)
            print("started", child, flush=True)
        elif word == "wait" and child is not None:
            _, status = os.waitpid(child, 0)
            child = None
            print("exit", os.waitstatus_to_exitcode(status), flush=True)
        else:
            print("error: unexpected %r" % word, flush=True)
    sock.close()


if __name__ == "__main__":
    main()
