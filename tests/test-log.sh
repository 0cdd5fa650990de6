#!/usr/bin/env bash
# Logging conventions of swerexd: timestamped lines on a plain stderr; no
# timestamps and "<N>" priority prefixes when stderr is the journal
# ($JOURNAL_STREAM names its device and inode); syslog(3) with the daemon
# facility and the right priorities with --log-target syslog. The syslog
# checks run swerexd in a private mount namespace whose /dev/log is the
# test's own datagram socket (the machine's syslog is never used). Prints
# TAP.
set -u

: "${SWEREXD:?set SWEREXD to the swerexd binary}"
: "${SWEREX_TUNNEL:?set SWEREX_TUNNEL to the swerex-tunnel binary}"

. "$(dirname "$0")/tap.sh"

d=$tap_dir
sock=$d/swerexd.sock
daemon_pid=
mkdir "$d/home" || exit 1
# HOME is private so the user's ~/.bashrc cannot change anything.
export HOME=$d/home

# Whether file $1 has a line matching the extended regex $2.
has_line() {
	grep -Eq -e "$2" "$1" && return 0
	echo "# no line matching '$2'"
	diag_file "$(basename "$1")" "$1"
	return 1
}

# Print "device:inode" of a file, as systemd puts it in $JOURNAL_STREAM.
dev_ino() {
	stat -c '%d:%i' "$1"
}

t_stderr() {
	tap_start_ready "$d/plain.log" "$SWEREXD" --listen "unix:$sock" \
	    --ready-fd 3 || return 1
	tap_stop "$tap_pid"
	rc_is 0 || return 1
	has_line "$d/plain.log" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} swerexd\[info\]: listening on unix:'
}

t_journal() {
	: >"$d/journal.log"
	JOURNAL_STREAM=$(dev_ino "$d/journal.log") tap_start_ready \
	    "$d/journal.log" "$SWEREXD" --listen "unix:$sock" --ready-fd 3 ||
		return 1
	daemon_pid=$tap_pid
	# Exactly the journal's form: priority 6 (info), no time, no name.
	has_line "$d/journal.log" "^<6>info: listening on unix:$sock\$"
}

t_journal_error() {
	# A second daemon on the same socket fails with an error (priority 3).
	: >"$d/journal2.log"
	JOURNAL_STREAM=$(dev_ino "$d/journal2.log") timeout 30 "$SWEREXD" \
	    --listen "unix:$sock" 2>"$d/journal2.log" </dev/null
	rc=$?
	[ "$rc" -eq 1 ] || { echo "# exit $rc, not 1"; diag_file log "$d/journal2.log"; return 1; }
	has_line "$d/journal2.log" "^<3>error: another swerexd is serving on $sock\$"
}

t_journal_stop() {
	tap_stop "$daemon_pid"
	rc_is 0 || return 1
	has_line "$d/journal.log" '^<6>info: shutting down$' || return 1
	# Every line is in the journal's form.
	! grep -v '^<[0-7]>' "$d/journal.log" | grep -q . ||
		{ diag_file "lines without a priority" "$d/journal.log"; return 1; }
}

t_journal_other_stream() {
	# JOURNAL_STREAM naming another file (as inherited by a program whose
	# stderr was redirected) keeps the timestamps.
	: >"$d/other"
	JOURNAL_STREAM=$(dev_ino "$d/other") tap_start_ready "$d/other.log" \
	    "$SWEREXD" --listen "unix:$sock" --ready-fd 3 || return 1
	tap_stop "$tap_pid"
	rc_is 0 || return 1
	has_line "$d/other.log" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{3} swerexd\[info\]: listening on'
}

# Become "$@" in a private mount namespace (as root, or mapped to root in
# a user namespace) whose /dev is a tmpfs holding only null and log, log
# being $d/devlog, the test's syslog socket. It execs, so that the pid
# signalled is swerexd's: call it in a subshell or a background job.
in_syslog_ns() {
	local userns=()
	[ "$(id -u)" -eq 0 ] || userns=(-r)
	: >"$d/null"
	exec unshare -m "${userns[@]}" sh -c '
		mount --bind /dev/null "$1/null" &&
		mount -t tmpfs tmpfs /dev &&
		touch /dev/null /dev/log &&
		mount --bind "$1/null" /dev/null &&
		mount --bind "$1/devlog" /dev/log || exit 125
		shift
		exec "$@"' sh "$d" "$@"
}

t_syslog_listener() {
	command -v unshare >/dev/null || {
		echo "# unshare missing (util-linux)"; return 1; }
	# Collects every datagram, one per line, until one says END-OF-TEST.
	tap_start_ready "$d/listener.log" /usr/bin/python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.write(3, b"READY=1\n")
os.close(3)
with open(sys.argv[2], "wb") as f:
    while True:
        m = s.recv(65536)
        f.write(m + b"\n")
        f.flush()
        if b"END-OF-TEST" in m:
            break
' "$d/devlog" "$d/syslog" || return 1
	listener_pid=$tap_pid
}

t_syslog() {
	tap_start_ready "$d/syslog-stderr" in_syslog_ns "$SWEREXD" \
	    --listen "unix:$sock" --log-target syslog --ready-fd 3 || return 1
	daemon_pid=$tap_pid
	# The same socket again: a start-up error.
	(in_syslog_ns timeout 30 "$SWEREXD" --listen "unix:$sock" \
	    --log-target syslog) 2>"$d/syslog-stderr2" </dev/null
	rc=$?
	[ "$rc" -eq 1 ] || { echo "# second daemon: exit $rc, not 1"; diag_file stderr "$d/syslog-stderr2"; return 1; }
	tap_stop "$daemon_pid"
	rc_is 0 || return 1
	# Every datagram before this one has been queued to the listener.
	printf '<13>END-OF-TEST' | /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(sys.stdin.buffer.read(), sys.argv[1])' "$d/devlog" || return 1
	wait "$listener_pid"
	tap_untrack "$listener_pid"
}

t_syslog_info() {
	# <30>: facility daemon (3 << 3) | LOG_INFO (6), identifier swerexd[PID].
	has_line "$d/syslog" "^<30>.* swerexd\\[[0-9]+\\]: listening on unix:$sock\$" &&
	    has_line "$d/syslog" '^<30>.* swerexd\[[0-9]+\]: shutting down$'
}

t_syslog_error() {
	# <27>: facility daemon | LOG_ERR (3).
	has_line "$d/syslog" "^<27>.* swerexd\\[[0-9]+\\]: another swerexd is serving on $sock\$"
}

t_syslog_quiet() {
	# With syslog, nothing goes to stderr.
	[ ! -s "$d/syslog-stderr" ] && [ ! -s "$d/syslog-stderr2" ] && return 0
	diag_file stderr "$d/syslog-stderr"
	diag_file "second daemon's stderr" "$d/syslog-stderr2"
	return 1
}

t_bad_target() {
	local fail=0 p
	for p in "$SWEREXD" "$SWEREX_TUNNEL"; do
		"$p" --log-target journal >"$d/out" 2>"$d/err" </dev/null
		rc=$?
		[ "$rc" -eq 2 ] && grep -q "log-target" "$d/err" && continue
		echo "# $p --log-target journal: exit $rc"
		diag_file stderr "$d/err"
		fail=1
	done
	return "$fail"
}

tests=(
	"t_stderr:plain stderr: timestamp, name and level on each line"
	"t_journal:stderr is the journal: <6>info, no timestamp"
	"t_journal_error:an error under the journal is <3>error"
	"t_journal_stop:shutting down is <6>info; every line has a priority"
	"t_journal_other_stream:JOURNAL_STREAM of another file keeps timestamps"
	"t_syslog_listener:a private /dev/log listener is ready"
	"t_syslog:--log-target syslog: daemon starts, a second one fails, SIGTERM exits 0"
	"t_syslog_info:syslog gets info messages as daemon.info from swerexd[PID]"
	"t_syslog_error:syslog gets the start-up error as daemon.err"
	"t_syslog_quiet:with --log-target syslog nothing is printed on stderr"
	"t_bad_target:an unknown --log-target is a usage error (swerexd, swerex-tunnel)"
)

tap_main
