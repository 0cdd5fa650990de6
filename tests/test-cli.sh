#!/usr/bin/env bash
# Integration test of the swerex CLI: start a private swerexd in a temp dir,
# wait for READY=1 on a fifo, drive it with $SWEREX_CLI, print TAP.
set -u

: "${SWEREXD:?set SWEREXD to the swerexd binary}"
: "${SWEREX_CLI:?set SWEREX_CLI to the swerex binary}"

. "$(dirname "$0")/tap.sh"

# The shared helpers (tests/tap.sh) keep their files in $tap_dir.
dir=$tap_dir
sock=$dir/swerexd.sock
url=unix:$sock
daemon_pid=

# Whether $dir/err holds exactly the bytes printf "$1" makes.
err_is() {
	printf "$1" >"$dir/expected"
	cmp -s "$dir/expected" "$dir/err" && return 0
	echo "# expected stderr:"
	od -c "$dir/expected" | sed 's/^/#   /'
	echo "# got:"
	od -c "$dir/err" | sed 's/^/#   /'
	return 1
}

# Run python3 code on $dir/out as parsed JSON (in variable j).
json_check() {
	python3 -c "import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if ($1) else 1)" "$dir/out" && return 0
	echo "# JSON check failed: $1"
	diag
	return 1
}

# wait_ready FD VAR: read the ready fd's lines (LISTEN=... first) until
# READY=1 or EOF; VAR gets the last line read.
wait_ready() {
	local l=
	while IFS= read -r -t 30 -u "$1" l; do
		[ "$l" = READY=1 ] && break
	done
	printf -v "$2" '%s' "$l"
}

t_ready() {
	mkdir "$dir/home" && mkfifo "$dir/ready" || return 1
	# HOME is private so the user's ~/.bashrc cannot change the sessions.
	HOME=$dir/home "$SWEREXD" --listen "$url" --ready-fd 3 \
	    3>"$dir/ready" 2>"$dir/log" </dev/null &
	daemon_pid=$!
	tap_track "$daemon_pid"
	# Opening the fifo waits for the daemon's end; EOF if it dies first.
	local line=
	exec 4<"$dir/ready"
	wait_ready 4 line
	exec 4<&-
	[ "$line" = READY=1 ] && return 0
	echo "# no READY=1 from swerexd (got '$line')"
	diag_file "daemon log" "$dir/log"
	return 1
}

t_version() {
	"$SWEREX_CLI" --version >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 0 && grep -Eq '^swerex [0-9]+\.[0-9]+' "$dir/out"
}

t_alive() {
	cli alive
	rc_is 0 && out_is 'alive\n'
}

t_alive_unreachable() {
	"$SWEREX_CLI" -S "unix:$dir/nothing.sock" alive >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 1 && err_kind CONNECT
}

t_session_create() {
	cli session create
	rc_is 0 && out_is ''
}

t_session_create_source() {
	printf 'echo sourced-ok\nFOO=bar\n' >"$dir/startup.sh"
	cli session create -s src --startup-source "$dir/startup.sh" \
	    --startup-timeout 20
	rc_is 0 && out_is 'sourced-ok\n' || return 1
	cli run -s src 'echo $FOO'
	rc_is 0 && out_is 'bar\n'
}

t_session_exists() {
	cli session create
	rc_is 1 && err_kind SESSION_EXISTS
}

t_session_list() {
	cli session list
	rc_is 0 || return 1
	head -n 1 "$dir/out" | grep -Eq '^NAME +PID +STATE +CREATED +LAST-COMMAND$' &&
	    grep -Eq '^default +[0-9]+ +idle +[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$dir/out" &&
	    grep -Eq '^src +[0-9]+ +idle .*echo \$FOO$' "$dir/out" && return 0
	diag
	return 1
}

t_session_list_json() {
	cli --json session list
	rc_is 0 && json_check 'isinstance(j, list) and
sorted(s["name"] for s in j) == ["default", "src"] and
all(s["pid"] > 0 and s["state"] == "idle" and s["created"] > 0 for s in j)'
}

t_run_exact() {
	cli run "printf '  x'"
	rc_is 0 && out_is '  x'
}

t_run_words() {
	cli run -- printf "'%s-'" a b
	rc_is 0 && out_is 'a-b-'
}

t_run_stdin() {
	printf 'echo one\necho two\n' | "$SWEREX_CLI" -S "$url" run - \
	    >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 0 && out_is 'one\ntwo\n'
}

t_run_silent() {
	cli run --check silent false
	rc_is 1 && out_is '' && [ ! -s "$dir/err" ]
}

t_run_ignore() {
	cli run --check ignore false
	rc_is 0
}

t_run_raise() {
	cli run '(exit 7)'
	rc_is 7 && out_is '' && err_kind NON_ZERO_EXIT_CODE
}

t_run_raise_output() {
	cli run 'echo out; (exit 5)'
	rc_is 5 && out_is 'out\n' && err_kind NON_ZERO_EXIT_CODE
}

t_run_timeout() {
	cli session create -s slow
	rc_is 0 || return 1
	cli run -s slow -t 0.5 'sleep 30'
	rc_is 124 && err_kind COMMAND_TIMEOUT
}

t_interrupt() {
	cli interrupt -s slow
	# 130 is sleep's status after SIGINT; only the CLI's own statuses fail.
	case $rc in
	1|2|3|124)
		echo "# interrupt failed"
		diag
		return 1 ;;
	esac
	cli run -s slow 'echo back'
	rc_is 0 && out_is 'back\n'
}

t_term_create() {
	cli session create -s term --rows 20 --cols 70 --env GREET='hi there' \
	    --cwd "$dir"
	rc_is 0 || return 1
	cli run -s term 'stty size; echo "$GREET"; pwd -P'
	rc_is 0 && out_is "20 70\\nhi there\\n$(cd "$dir" && pwd -P)\\n"
}

t_term_resize() {
	cli resize term 30 90
	rc_is 0 || return 1
	cli run -s term 'stty size'
	rc_is 0 && out_is '30 90\n' || return 1
	cli resize term 0 90
	rc_is 1 && err_kind INVALID_REQUEST
}

t_term_no_output() {
	cli run -s term --no-output-timeout 0.3 \
	    "echo a; while [ ! -e '$dir/go' ]; do sleep 0.05; done; echo b"
	rc_is 124 && out_is 'a\n' && err_kind NO_OUTPUT_TIMEOUT || return 1
	: >"$dir/go"
	cli run -s term --wait -t 30
	rc_is 0 && out_is 'b\n'
}

t_run_stream() {
	cli run --stream 'printf a; sleep 0.2; printf "b\\n"; (exit 3)'
	rc_is 3 && out_is 'ab\n' && err_kind NON_ZERO_EXIT_CODE
}

t_run_json() {
	cli --json run 'echo hi'
	rc_is 0 && json_check 'j["output"] == "hi\n" and j["exit_code"] == 0 and
j["truncated"] is False and j["failure_reason"] == "" and j["expect_string"] == ""'
}

t_run_json_error() {
	cli --json run 'echo partial; (exit 4)'
	rc_is 4 && json_check 'j["error"]["kind"] == "NON_ZERO_EXIT_CODE" and
isinstance(j["error"]["message"], str) and isinstance(j["error"]["extra"], dict) and
j["error"]["observation"]["output"] == "partial\n" and
j["error"]["observation"]["exit_code"] == 4'
}

t_run_json_bytes() {
	cli --json run --check ignore "printf '\\xff\\x01\"\\\\\\303\\251'"
	rc_is 0 && json_check 'j["output"] == "\ufffd\x01\"\\\u00e9" and
j["exit_code"] is None'
}

t_run_syntax() {
	cli run 'if then'
	rc_is 1 && out_is '' && err_kind BASH_INCORRECT_SYNTAX
}

t_run_no_session() {
	cli run -s nosuch true
	rc_is 1 && err_kind SESSION_DOES_NOT_EXIST
}

t_run_unreachable() {
	"$SWEREX_CLI" -S "unix:$dir/nothing.sock" run true >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 3 && err_kind CONNECT
}

t_exec_exact() {
	cli exec -- printf '  x\0y'
	rc_is 0 && out_is '  x\0y' && err_is ''
}

t_exec_streams() {
	cli exec -- sh -c 'echo out; echo err >&2; exit 5'
	rc_is 5 && out_is 'out\n' && err_is 'err\n'
}

t_exec_signal() {
	cli exec -- sh -c 'kill -TERM $$'
	rc_is 143 && out_is ''
}

t_exec_timeout() {
	cli exec -t 0.5 -- sh -c 'echo partial; sleep 30'
	rc_is 124 && out_is 'partial\n' && err_kind COMMAND_TIMEOUT
}

t_exec_not_found() {
	if [ -n "${SWEREX_VALGRIND_DIR:-}" ]; then
		tap_skip="valgrind: posix_spawn cannot report exec errors"
		return 77
	fi
	cli exec -- "$dir/no-such-program"
	rc_is 127 && out_is '' && err_kind FILE_NOT_FOUND
}

t_exec_check() {
	cli exec --check -- sh -c 'echo o; exit 3'
	rc_is 3 && out_is 'o\n' && err_kind NON_ZERO_EXIT_CODE || return 1
	cli exec --check -- true
	rc_is 0
}

t_exec_shell_env() {
	cli exec --shell --env X=1 --env Y=two -- 'echo $X-$Y' '>&2'
	rc_is 0 && out_is '' && err_is '1-two\n'
}

t_exec_replace_env() {
	cli exec --replace-env --env A=b -- /usr/bin/env
	rc_is 0 && out_is 'A=b\n'
}

t_exec_cwd() {
	cli exec --cwd "$dir" -- pwd
	rc_is 0 && out_is "$dir\\n"
}

t_exec_stdin() {
	printf 'in\0put' | "$SWEREX_CLI" -S "$url" exec --stdin-file - -- cat \
	    >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 0 && out_is 'in\0put' || return 1
	printf 'from file' >"$dir/input"
	cli exec --stdin-file "$dir/input" -- cat
	rc_is 0 && out_is 'from file' || return 1
	# Without --stdin-file the command reads /dev/null, not our stdin.
	echo leaked | "$SWEREX_CLI" -S "$url" exec -- cat >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 0 && out_is ''
}

t_exec_merge() {
	cli exec --merge -- sh -c 'echo 1; echo 2 >&2; echo 3'
	rc_is 0 && out_is '1\n2\n3\n' && err_is ''
}

t_exec_stream() {
	cli exec --stream -- sh -c 'printf a; sleep 0.2; printf b >&2; echo c; exit 4'
	rc_is 4 && out_is 'ac\n' && err_is 'b'
}

t_exec_json() {
	cli --json exec -- sh -c 'printf o; printf e >&2; exit 2'
	rc_is 2 && json_check 'j["stdout"] == "o" and j["stderr"] == "e" and
j["exit_code"] == 2 and j["signal"] == 0 and j["stdout_truncated"] is False and
j["stdout_bytes"] == 1 and j["failure_reason"] == ""'
}

t_exec_json_error() {
	cli --json exec -t 0.3 -- sh -c 'printf so-far; sleep 30'
	rc_is 124 && json_check 'j["error"]["kind"] == "COMMAND_TIMEOUT" and
j["error"]["execute"]["failure_reason"] == "timeout" and
j["error"]["execute"]["stdout"] == "so-far" and j["error"]["execute"]["exit_code"] is None'
}

t_write_read() {
	printf 'a\0b\n' | "$SWEREX_CLI" -S "$url" write "$dir/w/f" --mode 600 \
	    >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 0 && out_is '' || return 1
	printf 'a\0b\n' | cmp -s - "$dir/w/f" || { echo "# file differs"; return 1; }
	[ "$(stat -c %a "$dir/w/f")" = 600 ] || { echo "# mode"; return 1; }
	cli read "$dir/w/f"
	rc_is 0 && out_is 'a\0b\n' || return 1
	cli read --offset 1 --length 2 "$dir/w/f"
	rc_is 0 && out_is '\0b' || return 1
	cli --json read "$dir/w/f"
	rc_is 0 && json_check 'j["content"] == "a\x00b\n" and j["size"] == 4'
}

t_write_empty_json() {
	cli --json write "$dir/w/empty" </dev/null
	rc_is 0 && json_check 'j["bytes"] == 0' && [ -f "$dir/w/empty" ] &&
	    [ ! -s "$dir/w/empty" ]
}

t_write_no_parents() {
	printf x | "$SWEREX_CLI" -S "$url" write --no-create-parents \
	    "$dir/nodir/f" >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 1 && err_kind FILE_NOT_FOUND && [ ! -e "$dir/nodir" ]
}

t_read_errors() {
	cli read "$dir/missing"
	rc_is 1 && out_is '' && err_kind FILE_NOT_FOUND || return 1
	cli read "$dir"
	rc_is 1 && err_kind IS_A_DIRECTORY
}

# Make a tree with a file of each kind in $1.
make_tree() {
	mkdir -p "$1/a/empty" "$1/b" &&
	printf 'hello\n' >"$1/a/f" && chmod 640 "$1/a/f" &&
	printf '#!/bin/sh\necho run\n' >"$1/b/run" && chmod 755 "$1/b/run" &&
	chmod 750 "$1/b" &&
	ln -s a/f "$1/link" &&
	head -c 3000000 /dev/urandom >"$1/big" &&
	: >"$1/zero"
}

# Whether two trees have the same contents, links and modes.
same_tree() {
	diff -r --no-dereference "$1" "$2" >"$dir/diff" 2>&1 || {
		echo "# trees differ:"; sed 's/^/#   /' "$dir/diff"; return 1; }
	(cd "$1" && find . -printf '%p %y %m\n' | sort) >"$dir/modes1"
	(cd "$2" && find . -printf '%p %y %m\n' | sort) >"$dir/modes2"
	cmp -s "$dir/modes1" "$dir/modes2" && return 0
	echo "# modes differ:"
	diff "$dir/modes1" "$dir/modes2" | sed 's/^/#   /'
	return 1
}

t_upload_download() {
	make_tree "$dir/src" || return 1
	cli --json upload "$dir/src" "$dir/up/tree"
	rc_is 0 && json_check 'j["bytes"] == 3000000 + 6 + 19 and j["files"] == 5' ||
	    return 1
	same_tree "$dir/src" "$dir/up/tree" || return 1
	cli download "$dir/up/tree" "$dir/down/tree"
	rc_is 0 && out_is '' && err_is '' || return 1
	same_tree "$dir/src" "$dir/down/tree" || return 1
	ls -a "$dir/down" >"$dir/out"
	out_is '.\n..\ntree\n'
}

t_upload_download_file() {
	cli upload "$dir/src/b/run" "$dir/up/run"
	rc_is 0 && cmp -s "$dir/src/b/run" "$dir/up/run" &&
	    [ "$(stat -c %a "$dir/up/run")" = 755 ] || return 1
	cli download "$dir/up/run" "$dir/down/run"
	rc_is 0 && cmp -s "$dir/src/b/run" "$dir/down/run" &&
	    [ "$(stat -c %a "$dir/down/run")" = 755 ]
}

t_transfer_errors() {
	cli upload "$dir/missing" "$dir/up/x"
	rc_is 1 && err_kind FILE_NOT_FOUND && [ ! -e "$dir/up/x" ] || return 1
	cli download "$dir/missing" "$dir/down/x"
	rc_is 1 && err_kind FILE_NOT_FOUND && [ ! -e "$dir/down/x" ] || return 1
	ls -a "$dir/down" >"$dir/out"
	out_is '.\n..\nrun\ntree\n'
}

t_session_close() {
	cli session close -s src
	rc_is 0 || return 1
	cli --json session list
	rc_is 0 && json_check '"src" not in [s["name"] for s in j]'
}

t_session_close_again() {
	cli session close -s src
	rc_is 1 && err_kind SESSION_DOES_NOT_EXIST
}

t_stats() {
	cli stats
	rc_is 0 || return 1
	grep -Eq '^swerexd [^ ]+, up ' "$dir/out" &&
	    grep -Eq '^commands: +[1-9][0-9]*; executes: [1-9]' "$dir/out" &&
	    grep -Eq '^ +[0-9]+ +unix:pid=[0-9]+,uid=[0-9]+ +swerex ' "$dir/out" ||
	    { diag; return 1; }
	cli stats --json
	rc_is 0 && json_check 'j["commands"] > 0 and
j["command_latency"]["count"] == j["commands"] and
j["command_latency"]["buckets"][-1] == {"le": "+Inf", "count": j["commands"]} and
[c["client_name"] for c in j["connections"]] == ["swerex"] and
"prometheus" not in j' || return 1
	cli stats --prometheus
	rc_is 0 && grep -Eq '^swerexd_commands_total [1-9][0-9]*$' "$dir/out" &&
	    grep -q '^# TYPE swerexd_command_duration_seconds histogram$' \
	    "$dir/out" && return 0
	diag
	return 1
}

t_history() {
	cli history
	rc_is 0 || return 1
	head -n 1 "$dir/out" | grep -Eq \
	    '^ +SEQ +EXIT +DURATION +OUTPUT +STARTED +REASON +COMMAND$' &&
	    grep -Eq "^ +[0-9]+ +0 +[0-9.]+s +3 +[0-9T:+-]+ +- +printf '  x'$" \
	    "$dir/out" || { diag; return 1; }
	cli --json history -n 2 default
	rc_is 0 && json_check 'j["session"] == "default" and
len(j["entries"]) == 2 and j["entries"][-1]["seq"] == j["total"] and
j["entries"][0]["seq"] == j["total"] - 1' || return 1
	cli history no-such-session
	rc_is 1 && err_kind SESSION_DOES_NOT_EXIST
}

t_help() {
	local args
	for args in "" "alive" "session" "session create" "session close" \
	    "session list" "run" "interrupt" "resize" "exec" "read" "write" \
	    "upload" "download" "stats" "history"; do
		# shellcheck disable=SC2086
		"$SWEREX_CLI" $args --help >"$dir/out" 2>"$dir/err"
		rc=$?
		if [ "$rc" -ne 0 ] || ! grep -q '^usage: swerex' "$dir/out"; then
			echo "# swerex $args --help"
			diag
			return 1
		fi
	done
	"$SWEREX_CLI" -h >"$dir/out" 2>"$dir/err" && grep -q '^usage:' "$dir/out"
}

t_usage() {
	local args
	for args in "" "bogus" "--bogus" "session" "session bogus" "run" \
	    "run --check nope true" "run -t -1 true" "interrupt -n x" \
	    "alive extra" "session list extra" "exec" "exec --env NOEQ -- true" \
	    "exec -t x -- true" "--json exec --stream -- true" "read" "read a b" \
	    "read --length -1 a" "write" "write --mode 9 a" "upload a" \
	    "download a b c" "resize a 1" "resize a x 2" "run --wait true" \
	    "run --no-output-timeout 0 true" "session create --rows x"; do
		# shellcheck disable=SC2086
		"$SWEREX_CLI" -S "$url" $args >"$dir/out" 2>"$dir/err"
		rc=$?
		if [ "$rc" -ne 2 ] || [ -s "$dir/out" ] ||
		    ! grep -q '^usage: swerex' "$dir/err"; then
			echo "# swerex $args: expected exit 2 and usage on stderr"
			diag
			return 1
		fi
	done
}

t_default_socket() {
	# Daemon and client agree on $XDG_RUNTIME_DIR/swerexd.sock, mode 0600;
	# a second daemon on it is refused; SIGTERM removes it.
	local x=$dir/xdg line= pid st
	mkdir -m 700 "$x" && mkfifo "$dir/ready2" || return 1
	XDG_RUNTIME_DIR=$x HOME=$dir/home "$SWEREXD" --ready-fd 3 \
	    3>"$dir/ready2" 2>"$dir/log2" </dev/null &
	pid=$!
	exec 4<"$dir/ready2"
	wait_ready 4 line
	exec 4<&-
	[ "$line" = READY=1 ] || { echo "# no READY=1"; kill "$pid"; wait "$pid"; return 1; }
	st=$(stat -c %a "$x/swerexd.sock")
	[ "$st" = 600 ] || { echo "# socket mode $st"; kill "$pid"; wait "$pid"; return 1; }
	XDG_RUNTIME_DIR=$x SWEREX_URL= "$SWEREX_CLI" alive >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 0 || { kill "$pid"; wait "$pid"; return 1; }
	XDG_RUNTIME_DIR=$x "$SWEREXD" 2>"$dir/err" </dev/null
	rc=$?
	rc_is 1 && grep -q "another swerexd" "$dir/err" || { kill "$pid"; wait "$pid"; return 1; }
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	rc_is 0 && [ ! -e "$x/swerexd.sock" ]
}

t_daemon_help() {
	"$SWEREXD" --help >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 0 && grep -q -- "--ready-fd" "$dir/out" || return 1
	"$SWEREXD" --version >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 0 && grep -Eq '^swerexd [0-9.]+ \(protocol 1\)' "$dir/out" || return 1
	"$SWEREXD" --no-such-option >"$dir/out" 2>"$dir/err"
	rc=$?
	rc_is 2
}

t_daemon_exit() {
	local status
	kill -TERM "$daemon_pid" || return 1
	wait "$daemon_pid"
	status=$?
	tap_untrack "$daemon_pid"
	daemon_pid=
	[ "$status" -eq 0 ] && return 0
	echo "# swerexd exited $status"
	diag_file "daemon log" "$dir/log"
	return 1
}

tests=(
	"t_ready:swerexd becomes ready"
	"t_version:--version prints the version"
	"t_alive:alive"
	"t_alive_unreachable:alive exits 1 without a daemon"
	"t_session_create:session create"
	"t_session_create_source:session create --startup-source"
	"t_session_exists:session create of an existing session fails"
	"t_session_list:session list table"
	"t_session_list_json:session list --json"
	"t_run_exact:run prints output bytes exactly"
	"t_run_words:run joins COMMAND words with spaces"
	"t_run_stdin:run - reads the command from stdin"
	"t_run_silent:run --check silent exits with the exit code"
	"t_run_ignore:run --check ignore exits 0"
	"t_run_raise:run exits with the code of a failed command"
	"t_run_raise_output:run prints output of a failed command"
	"t_run_timeout:run -t exits 124 on timeout"
	"t_interrupt:interrupt frees the session"
	"t_term_create:session create --rows --cols --env --cwd"
	"t_term_resize:resize, and a bad size refused"
	"t_term_no_output:run --no-output-timeout exits 124, run --wait"
	"t_run_stream:run --stream"
	"t_run_json:run --json"
	"t_run_json_error:run --json on NON_ZERO_EXIT_CODE"
	"t_run_json_bytes:run --json escapes control and invalid UTF-8 bytes"
	"t_run_syntax:run reports bash syntax errors"
	"t_run_no_session:run in a missing session"
	"t_run_unreachable:run exits 3 without a daemon"
	"t_exec_exact:exec prints stdout bytes exactly"
	"t_exec_streams:exec: stdout, stderr and the exit code"
	"t_exec_signal:exec exits 128+N when killed by signal N"
	"t_exec_timeout:exec -t prints partial output and exits 124"
	"t_exec_not_found:exec of a missing program exits 127"
	"t_exec_check:exec --check"
	"t_exec_shell_env:exec --shell --env"
	"t_exec_replace_env:exec --replace-env"
	"t_exec_cwd:exec --cwd"
	"t_exec_stdin:exec --stdin-file, else /dev/null"
	"t_exec_merge:exec --merge"
	"t_exec_stream:exec --stream"
	"t_exec_json:exec --json"
	"t_exec_json_error:exec --json on COMMAND_TIMEOUT"
	"t_write_read:write and read bytes exactly"
	"t_write_empty_json:write of empty stdin, --json"
	"t_write_no_parents:write --no-create-parents"
	"t_read_errors:read of a missing file or a directory"
	"t_upload_download:upload and download a tree"
	"t_upload_download_file:upload and download a single file"
	"t_transfer_errors:failed transfers leave nothing behind"
	"t_session_close:session close"
	"t_session_close_again:session close of a closed session fails"
	"t_stats:stats, --json and --prometheus"
	"t_history:history table, --json -n, unknown session"
	"t_help:--help exits 0 everywhere"
	"t_usage:bad usage exits 2"
	"t_default_socket:default socket, its mode, a second daemon refused"
	"t_daemon_help:swerexd --help, --version and bad usage"
	"t_daemon_exit:swerexd exits 0 on SIGTERM"
)

tap_main
