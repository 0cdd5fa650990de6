#!/usr/bin/env bash
# Socket activation: swerexd started the systemd way (LISTEN_FDS=1,
# LISTEN_PID, the listening socket as fd 3) serves that socket, makes none of
# its own, hides the variables from sessions and leaves the socket file to
# its owner on exit. The activator is test-activation.py (a .socket unit's
# behaviour: it keeps the socket across restarts) and systemd's own
# systemd-socket-activate (start on the first connection). Prints TAP.
set -u

: "${SWEREXD:?set SWEREXD to the swerexd binary}"
: "${SWEREX_CLI:?set SWEREX_CLI to the swerex binary}"

here=$(cd "$(dirname "$0")" && pwd)
. "$here/tap.sh"

d=$tap_dir
sock=$d/activated.sock
url=unix:$sock
mkdir -m 700 "$d/home" "$d/xdg" "$d/xdg2" "$d/xdg3" || exit 1
daemon_pid=
launch_pid=

# Send one command line to the launcher.
launch_say() {
	printf '%s\n' "$1" >&"${LAUNCH[1]}"
}

# Read the launcher's next line (at most 30 s) into the variable named $1.
launch_hear() {
	local _heard=
	IFS= read -r -t 30 -u "${LAUNCH[0]}" _heard
	printf -v "$1" '%s' "$_heard"
}

# Whether dir $1 is empty (the daemon made no socket of its own there).
no_own_socket() {
	[ -z "$(ls -A "$1")" ] && return 0
	echo "# swerexd made a socket of its own:"
	ls -la "$1" | sed 's/^/#   /'
	return 1
}

t_launcher() {
	# The daemon's default socket would be $XDG_RUNTIME_DIR/swerexd.sock.
	coproc LAUNCH {
		HOME=$d/home XDG_RUNTIME_DIR=$d/xdg exec /usr/bin/python3 \
		    "$here/test-activation.py" "$sock" "$SWEREXD" \
		    2>>"$d/daemon.log"
	}
	launch_pid=$LAUNCH_PID
	tap_track "$launch_pid"
	local l
	launch_hear l
	[ "$l" = listening ] && [ -S "$sock" ] || {
		echo "# launcher said '$l'"; diag_file log "$d/daemon.log"; return 1; }
}

t_start() {
	local l
	launch_say start
	launch_hear l
	case $l in
	"started "[0-9]*) daemon_pid=${l#started } ;;
	*) echo "# launcher said '$l'"; return 1 ;;
	esac
	tap_track "$daemon_pid"
	# No readiness wait: the connection waits in the socket's backlog
	# until swerexd accepts it.
	cli alive
	rc_is 0 && out_is 'alive\n' || { diag_file log "$d/daemon.log"; return 1; }
}

t_no_own_socket() {
	no_own_socket "$d/xdg"
}

t_session() {
	cli session create
	rc_is 0 || return 1
	cli run 'cd /tmp; x=5'
	rc_is 0 && out_is '' || return 1
	cli run 'echo $x; pwd'
	rc_is 0 && out_is '5\n/tmp\n'
}

t_env_hidden() {
	cli run 'echo "[${LISTEN_FDS-}|${LISTEN_PID-}|${LISTEN_FDNAMES-}]"'
	rc_is 0 && out_is '[||]\n' || return 1
	cli exec -- sh -c 'echo "[${LISTEN_FDS-}|${LISTEN_PID-}]"'
	rc_is 0 && out_is '[|]\n'
}

# SIGTERM the launcher's daemon; pass if it exits 0 and the socket stays.
stop_activated() {
	local l
	kill -TERM "$daemon_pid" || return 1
	launch_say wait
	launch_hear l
	tap_untrack "$daemon_pid"
	[ "$l" = "exit 0" ] || {
		echo "# launcher said '$l'"; diag_file log "$d/daemon.log"; return 1; }
	[ -S "$sock" ] || { echo "# $sock was removed"; return 1; }
}

t_term() {
	stop_activated
}

t_backlog_restart() {
	# A client that connects while no daemon runs waits in the backlog
	# and is served by the next one, on the same socket.
	local l cli_pid
	timeout 60 "$SWEREX_CLI" -S "$url" alive >"$d/out" 2>"$d/err" &
	cli_pid=$!
	tap_track "$cli_pid"
	launch_say start
	launch_hear l
	case $l in
	"started "[0-9]*) daemon_pid=${l#started } ;;
	*) echo "# launcher said '$l'"; return 1 ;;
	esac
	tap_track "$daemon_pid"
	wait "$cli_pid"
	rc=$?
	tap_untrack "$cli_pid"
	rc_is 0 && out_is 'alive\n' || return 1
	# Sessions died with the first daemon.
	cli --json session list
	rc_is 0 && out_is '[]\n'
}

t_term_again() {
	stop_activated && no_own_socket "$d/xdg"
}

t_wrong_pid() {
	# LISTEN_PID names another process: the fds are not ours. fd 3 is
	# then just the ready fd and the default socket is used.
	HOME=$d/home XDG_RUNTIME_DIR=$d/xdg2 LISTEN_FDS=1 LISTEN_PID=$$ \
	    tap_start_ready "$d/wrong.log" "$SWEREXD" --ready-fd 3 || return 1
	local pid=$tap_pid
	[ "${tap_listen[*]}" = "unix:$d/xdg2/swerexd.sock" ] || {
		echo "# LISTEN: ${tap_listen[*]}"; tap_stop "$pid"; return 1; }
	timeout 60 "$SWEREX_CLI" -S "unix:$d/xdg2/swerexd.sock" alive >"$d/out" 2>"$d/err"
	rc=$?
	rc_is 0 || { tap_stop "$pid"; return 1; }
	tap_stop "$pid"
	rc_is 0 && [ ! -e "$d/xdg2/swerexd.sock" ]
}

t_sd_activate() {
	# systemd's tool: listen, exec swerexd in place on the first connection.
	local sa=$d/sa.sock
	command -v systemd-socket-activate >/dev/null || {
		echo "# systemd-socket-activate missing: apt-get install systemd"
		return 1; }
	tap_start_logline "$d/sa.log" "Listening on $sa" \
	    systemd-socket-activate -l "$sa" -E "HOME=$d/home" \
	    -E "XDG_RUNTIME_DIR=$d/xdg3" "$SWEREXD" || return 1
	daemon_pid=$tap_pid
	timeout 60 "$SWEREX_CLI" -S "unix:$sa" session create >"$d/out" 2>"$d/err"
	rc=$?
	rc_is 0 || { diag_file log "$d/sa.log"; return 1; }
	timeout 60 "$SWEREX_CLI" -S "unix:$sa" run 'echo $((6 * 7))' >"$d/out" 2>"$d/err"
	rc=$?
	rc_is 0 && out_is '42\n' && no_own_socket "$d/xdg3"
}

t_sd_term() {
	tap_stop "$daemon_pid"
	rc_is 0 || { diag_file log "$d/sa.log"; return 1; }
	[ -S "$d/sa.sock" ] || { echo "# $d/sa.sock was removed"; return 1; }
}

t_units_verify() {
	# The shipped units load cleanly (no unknown keys, bad specifiers or
	# missing binaries): checked as user units, made from the .in sources
	# with ExecStart pointed at the built swerexd, since the installed one
	# may not exist (test-install.sh checks the installed units).
	local u units=$here/../contrib/systemd
	command -v systemd-analyze >/dev/null || {
		echo "# systemd-analyze missing: apt-get install systemd"
		return 1; }
	mkdir -m 700 "$d/units" "$d/units-xdg" || return 1
	for u in swerexd.service swerexd.socket swerexd-tls.service; do
		sed -e "s|@sbindir@/swerexd|$SWEREXD|" \
		    -e "s|@userunitdir@|~/.config/systemd/user|" "$units/$u.in" \
		    >"$d/units/$u" || return 1
	done
	(cd "$d/units" && XDG_RUNTIME_DIR=$d/units-xdg systemd-analyze verify \
	    --user ./swerexd.service ./swerexd.socket ./swerexd-tls.service) \
	    >"$d/out" 2>&1
	rc=$?
	[ "$rc" -eq 0 ] && [ ! -s "$d/out" ] && return 0
	echo "# systemd-analyze verify: exit $rc"
	diag_file output "$d/out"
	return 1
}

tests=(
	"t_launcher:the activator listens on the socket"
	"t_start:swerexd started with LISTEN_FDS serves the passed socket"
	"t_no_own_socket:no socket of its own"
	"t_session:a session keeps state over the activated socket"
	"t_env_hidden:sessions and exec do not see LISTEN_* variables"
	"t_term:SIGTERM: exit 0, the activator's socket file stays"
	"t_backlog_restart:a client queued while down is served after a restart"
	"t_term_again:second SIGTERM: exit 0, socket stays, none of its own"
	"t_wrong_pid:LISTEN_PID of another process: fds ignored"
	"t_sd_activate:systemd-socket-activate starts swerexd on first connect"
	"t_sd_term:SIGTERM: exit 0, the socket file stays"
	"t_units_verify:contrib/systemd units pass systemd-analyze verify"
)

tap_main
