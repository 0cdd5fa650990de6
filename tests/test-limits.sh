#!/usr/bin/env bash
# The system limits a thousand sessions meet, hit for real on a small scale:
# RLIMIT_NPROC (a daemon run as an unprivileged user with a low limit) and
# the pty count (a private devpts instance with max=2 in a mount namespace
# of the daemon's own, so the machine's ptys are untouched). Each must give
# RESOURCE_EXHAUSTED naming the limit, keep the daemon serving, and recover
# when a session closes. Needs root (to drop to another user, or to mount);
# without it the tests report SKIP, which counts neither way. Prints TAP.
set -u

: "${SWEREXD:?set SWEREXD to the swerexd binary}"
: "${SWEREX_CLI:?set SWEREX_CLI to the swerex binary}"

here=$(cd "$(dirname "$0")" && pwd)
. "$here/tap.sh"

d=$tap_dir
nobody=65534
# Create sessions s0, s1, ... until one fails (at most $1); sets made and
# leaves the failure's JSON in $d/out.
create_until_refused() {
	local i
	made=0
	for ((i = 0; i < $1; i++)); do
		cli --json session create -s "s$i"
		[ "$rc" -eq 0 ] || return 0
		made=$((made + 1))
	done
}

# Whether the last cli output is RESOURCE_EXHAUSTED with extra.limit $1.
refused_for() {
	grep -q '"kind": "RESOURCE_EXHAUSTED"' "$d/out" &&
	    grep -q "\"limit\": \"$1\"" "$d/out" && return 0
	echo "# expected RESOURCE_EXHAUSTED with limit $1"
	diag
	return 1
}

# After a refusal: the daemon still serves, and a closed session's slot is
# usable again.
recovers() {
	cli run -s s0 'echo still here'
	out_is 'still here\n' || return 1
	cli session close -s s0
	rc_is 0 || return 1
	cli session create -s again
	rc_is 0 || return 1
	cli run -s again 'echo $((6 * 7))'
	out_is '42\n'
}

t_nproc() {
	if [ -n "${SWEREX_VALGRIND_DIR:-}" ]; then
		# $SWEREXD is valgrind's wrapper, which cannot run as nobody.
		tap_skip="valgrind: its wrapper cannot run as another user"
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		tap_skip="not root: cannot run the daemon as another user"
		return 0
	fi
	# An unprivileged daemon (root ignores RLIMIT_NPROC) from a copy it
	# can read, with room for itself and two shells: the limit counts every
	# process of the user, so start from what that user already runs.
	local dir=$d/nproc have limit
	chmod 755 "$d"
	mkdir -m 755 "$dir" && mkdir -m 700 "$dir/home" "$dir/run" || return 1
	cp "$SWEREXD" "$dir/swerexd" && chmod 755 "$dir/swerexd" || return 1
	chown "$nobody:$nobody" "$dir/home" "$dir/run" || return 1
	have=$(ps -u "$nobody" --no-headers | wc -l)
	limit=$((have + 3))
	tap_start_ready "$dir/daemon.log" prlimit --nproc="$limit:$limit" \
	    setpriv --reuid="$nobody" --regid="$nobody" --clear-groups \
	    env HOME="$dir/home" "$dir/swerexd" --listen "unix:$dir/run/s.sock" \
	    --ready-fd 3 || return 1
	url=unix:$dir/run/s.sock
	create_until_refused 8
	echo "# RLIMIT_NPROC $limit: $made sessions, then: $(cat "$d/out")"
	[ "$made" -ge 1 ] && [ "$made" -le 2 ] ||
	    { echo "# expected 1 or 2 sessions under the limit"; return 1; }
	refused_for nproc || return 1
	grep -q "RLIMIT_NPROC $limit" "$d/out" ||
	    { echo "# the message does not give the limit's value"; return 1; }
	recovers || return 1
	tap_stop "$tap_pid"
}

t_pty() {
	if [ "$(id -u)" -ne 0 ]; then
		tap_skip="not root: cannot mount a private devpts"
		return 0
	fi
	local dir=$d/pty
	mkdir -m 700 "$dir" "$dir/home" || return 1
	# A devpts instance of its own with room for two ptys, seen only by
	# this daemon and its sessions.
	if ! unshare -m --propagation private true 2>/dev/null; then
		tap_skip="no mount namespaces here"
		return 0
	fi
	tap_start_ready "$dir/daemon.log" unshare -m --propagation private \
	    sh -c 'mount -t devpts -o newinstance,ptmxmode=0666,max=2 devpts \
	        /dev/pts && mount --bind /dev/pts/ptmx /dev/ptmx &&
	        exec env HOME="$1/home" "$2" --listen "unix:$1/s.sock" \
	        --ready-fd 3' sh "$dir" "$SWEREXD" || return 1
	url=unix:$dir/s.sock
	create_until_refused 8
	echo "# devpts max=2: $made sessions, then: $(cat "$d/out")"
	[ "$made" -eq 2 ] || { echo "# expected exactly 2 sessions"; return 1; }
	refused_for pty || return 1
	grep -q 'no pty left' "$d/out" ||
	    { echo "# the message does not say what ran out"; return 1; }
	recovers || return 1
	tap_stop "$tap_pid"
}

tests=(
	"t_nproc:RLIMIT_NPROC reached: RESOURCE_EXHAUSTED limit=nproc, recovers"
	"t_pty:pty count reached: RESOURCE_EXHAUSTED limit=pty, recovers"
)
tap_main
