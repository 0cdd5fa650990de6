# Helpers shared by the shell TAP tests (sourced, not run): a private temp
# dir, background processes reaped by pid on exit, daemons waited for on a
# READY=1 fifo, the swerex CLI, and checks that explain a failure as TAP
# comments. The sourcing script sets SWEREX_CLI and calls tap_main.

tap_dir=$(mktemp -d "${TMPDIR:-/tmp}/swerex-tap.XXXXXX") || exit 1
tap_pids=()
url=
rc=0

# Stop every process still listed, last started first (TERM, then reap),
# then remove the dir.
tap_cleanup() {
	local i p
	for ((i = ${#tap_pids[@]} - 1; i >= 0; i--)); do
		p=${tap_pids[i]}
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	tap_pids=()
	rm -rf "$tap_dir"
}
trap tap_cleanup EXIT
trap 'exit 1' HUP INT TERM

# Remember a background pid so the exit trap reaps it.
tap_track() {
	tap_pids+=("$1")
}

# Forget a pid the test reaped itself.
tap_untrack() {
	local p keep=()
	for p in "${tap_pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	tap_pids=("${keep[@]}")
}

# Send SIGTERM to a tracked pid and reap it; rc is its exit status.
tap_stop() {
	if [ -z "$1" ]; then
		echo "# no process to stop"
		rc=255
		return
	fi
	kill -TERM "$1" 2>/dev/null
	wait "$1"
	rc=$?
	tap_untrack "$1"
}

# Start "$@" in the background with fd 3 on a fifo and wait (at most 30 s
# a line) for the daemon's ready lines there (--ready-fd 3): LISTEN=ADDR per
# listener, collected in tap_listen, then READY=1. Sets tap_pid; stderr goes
# to $1. Fails (with the log as diagnostics) when the process exits or
# stays silent instead.
tap_start_ready() {
	local log=$1 fifo line=
	shift
	local what=$1
	fifo=$(mktemp -u "$tap_dir/ready.XXXXXX")
	mkfifo "$fifo" || return 1
	"$@" 3>"$fifo" 2>"$log" </dev/null &
	tap_pid=$!
	tap_track "$tap_pid"
	tap_listen=()
	# Opening the fifo waits for the writer's end; EOF if it dies first.
	exec 4<"$fifo"
	while IFS= read -r -t 30 -u 4 line; do
		case $line in
		LISTEN=*) tap_listen+=("${line#LISTEN=}") ;;
		*) break ;;
		esac
	done
	exec 4<&-
	rm -f "$fifo"
	[ "$line" = READY=1 ] && return 0
	echo "# no READY=1 from $what (got '$line')"
	diag_file "log" "$log"
	return 1
}

# Start "$@" in the background with stderr on a fifo and wait (at most 30 s
# a line) for a line of it starting with $2, for programs that announce
# readiness only in their log. Sets tap_pid; every line goes to the file $1,
# the rest drained there by a tracked cat so the program never blocks on it.
tap_start_logline() {
	local log=$1 want=$2 fifo line ready=0
	shift 2
	fifo=$(mktemp -u "$tap_dir/log.XXXXXX")
	mkfifo "$fifo" || return 1
	"$@" 2>"$fifo" </dev/null &
	tap_pid=$!
	tap_track "$tap_pid"
	exec 5<"$fifo"
	rm -f "$fifo"
	while IFS= read -r -t 30 -u 5 line; do
		printf '%s\n' "$line" >>"$log"
		case $line in
		"$want"*) ready=1; break ;;
		esac
	done
	cat <&5 >>"$log" &
	tap_track $!
	exec 5<&-
	[ "$ready" -eq 1 ] && return 0
	echo "# no '$want' from $1"
	diag_file "log" "$log"
	return 1
}

# Run the CLI against $url, for at most 60 s (a daemon that never answers
# fails the test instead of hanging it); sets rc, output in $tap_dir/out
# and /err.
cli() {
	# Never fall back to the user's default socket (someone else's daemon).
	[ -n "$url" ] || { echo "# url unset"; rc=255; return; }
	timeout 60 "$SWEREX_CLI" -S "$url" "$@" >"$tap_dir/out" 2>"$tap_dir/err"
	rc=$?
}

# Print a file as TAP comment lines under a title.
diag_file() {
	[ -s "$2" ] || return 0
	echo "# $1:"
	sed 's/^/#   /' "$2"
}

# Explain the last cli call.
diag() {
	echo "# exit status $rc"
	diag_file stdout "$tap_dir/out"
	diag_file stderr "$tap_dir/err"
}

# Whether $tap_dir/out holds exactly the bytes printf "$1" makes.
out_is() {
	printf "$1" >"$tap_dir/expected"
	cmp -s "$tap_dir/expected" "$tap_dir/out" && return 0
	echo "# expected stdout:"
	od -c "$tap_dir/expected" | sed 's/^/#   /'
	echo "# got:"
	od -c "$tap_dir/out" | sed 's/^/#   /'
	return 1
}

# Whether rc is $1; explain when not.
rc_is() {
	[ "$rc" -eq "$1" ] && return 0
	echo "# expected exit status $1"
	diag
	return 1
}

# Whether $tap_dir/err starts with "swerex: $1".
err_kind() {
	grep -q "^swerex: $1" "$tap_dir/err" && return 0
	echo "# expected \"swerex: $1\" on stderr"
	diag
	return 1
}

# Run the "function:description" entries of the tests array in order and
# print TAP; exit 1 if any failed. A test that cannot run here sets
# tap_skip to the reason and returns 0 (or 77): "ok N - name # SKIP why",
# counted neither way.
tap_main() {
	local t n=0 failed=0 r
	echo "1..${#tests[@]}"
	for t in "${tests[@]}"; do
		n=$((n + 1))
		tap_skip=
		"${t%%:*}"
		r=$?
		if [ "$r" -eq 0 ] || { [ "$r" -eq 77 ] && [ -n "$tap_skip" ]; }; then
			if [ -n "$tap_skip" ]; then
				echo "ok $n - ${t#*:} # SKIP $tap_skip"
			else
				echo "ok $n - ${t#*:}"
			fi
		else
			echo "not ok $n - ${t#*:}"
			failed=1
		fi
	done
	exit "$failed"
}
