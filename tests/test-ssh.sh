#!/usr/bin/env bash
# swerexd over ssh: a private sshd on 127.0.0.1 (throwaway host and user
# keys in a temp dir), a swerexd on a Unix socket, `ssh -N -L LOCAL:REMOTE`
# forwarding a local socket to it, and the swerex CLI driving sessions, exec
# and files through the forward. Needs openssh-server and openssh-client.
# Prints TAP.
set -u

: "${SWEREXD:?set SWEREXD to the swerexd binary}"
: "${SWEREX_CLI:?set SWEREX_CLI to the swerex binary}"

. "$(dirname "$0")/tap.sh"

d=$tap_dir
remote=$d/remote.sock
local_sock=$d/local.sock
url=unix:$local_sock
user=$(id -un)
sshd=/usr/sbin/sshd
port=
sshd_pid=
ssh_pid=
daemon_pid=

# Print a free TCP port on 127.0.0.1 (the kernel's pick; sshd then binds it).
free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

t_sshd() {
	[ -x "$sshd" ] || { echo "# $sshd missing: apt-get install openssh-server"; return 1; }
	ssh-keygen -q -t ed25519 -N '' -C swerex-test-host -f "$d/host_key" &&
	ssh-keygen -q -t ed25519 -N '' -C swerex-test-user -f "$d/user_key" &&
	cp "$d/user_key.pub" "$d/authorized_keys" || return 1
	port=$(free_port) || return 1
	# Only what the test needs: key logins for us, stream-local forwards.
	cat >"$d/sshd_config" <<-EOF
	ListenAddress 127.0.0.1
	Port $port
	HostKey $d/host_key
	AuthorizedKeysFile $d/authorized_keys
	PidFile $d/sshd.pid
	StrictModes no
	UsePAM no
	PasswordAuthentication no
	KbdInteractiveAuthentication no
	PermitRootLogin prohibit-password
	AllowUsers $user
	AllowStreamLocalForwarding yes
	StreamLocalBindUnlink yes
	X11Forwarding no
	PermitTTY no
	LogLevel VERBOSE
	EOF
	# sshd running as root wants its privilege separation directory.
	[ "$(id -u)" -ne 0 ] || [ -d /run/sshd ] || mkdir -m 755 /run/sshd ||
	    return 1
	"$sshd" -t -f "$d/sshd_config" >"$d/out" 2>&1 || {
		diag_file "sshd -t" "$d/out"; return 1; }
	# sshd has no readiness fd, but -e logs "Server listening on ..." once
	# it has bound.
	tap_start_logline "$d/sshd.log" "Server listening on 127.0.0.1 port $port" \
	    "$sshd" -f "$d/sshd_config" -D -e || return 1
	sshd_pid=$tap_pid
}

t_swerexd() {
	mkdir "$d/home" || return 1
	HOME=$d/home tap_start_ready "$d/swerexd.log" "$SWEREXD" \
	    --listen "unix:$remote" --ready-fd 3 || return 1
	daemon_pid=$tap_pid
}

t_forward() {
	# LocalCommand runs once ssh has bound its -L listeners (after
	# authentication), so its write to the fifo is the readiness event.
	# ssh closes inherited fds, hence a fifo by name; opened read-write so
	# waiting never blocks if ssh dies before LocalCommand.
	mkfifo "$d/fwd.fifo" || return 1
	exec 6<>"$d/fwd.fifo"
	ssh -N -F /dev/null -o StrictHostKeyChecking=no \
	    -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
	    -o IdentitiesOnly=yes -o IdentityAgent=none \
	    -o ExitOnForwardFailure=yes -o ServerAliveInterval=15 \
	    -o PermitLocalCommand=yes -o "LocalCommand=echo up >$d/fwd.fifo" \
	    -i "$d/user_key" -p "$port" -L "$local_sock:$remote" \
	    "$user@127.0.0.1" 2>"$d/ssh.log" </dev/null &
	ssh_pid=$!
	tap_track "$ssh_pid"
	# Wake on the event, or every 0.2 s to notice an ssh that died;
	# at most 30 s in all. A timeout can split the line: read keeps the
	# part it got, so collect the parts.
	local line= part i
	for ((i = 0; i < 150; i++)); do
		part=
		if IFS= read -r -t 0.2 -u 6 part; then
			line+=$part
			break
		fi
		line+=$part
		kill -0 "$ssh_pid" 2>/dev/null || break
	done
	exec 6<&-
	if [ "$line" != up ]; then
		echo "# ssh forward not up (fifo: '$line')"
		diag_file "ssh log" "$d/ssh.log"
		diag_file "sshd log" "$d/sshd.log"
		return 1
	fi
	[ -S "$local_sock" ] || { echo "# no $local_sock"; return 1; }
	cli alive
	rc_is 0 && out_is 'alive\n'
}

t_session_state() {
	cli session create -s fwd
	rc_is 0 || return 1
	cli run -s fwd 'cd /tmp; x=5'
	rc_is 0 && out_is '' || return 1
	cli run -s fwd 'echo $x; pwd'
	rc_is 0 && out_is '5\n/tmp\n'
}

t_exit_codes() {
	cli run -s fwd 'echo out; (exit 4)'
	rc_is 4 && out_is 'out\n' && err_kind NON_ZERO_EXIT_CODE || return 1
	cli run -s fwd --check silent '(exit 3)'
	rc_is 3 && out_is ''
}

t_exec() {
	cli exec -- sh -c 'echo o; echo e >&2; exit 5'
	rc_is 5 && out_is 'o\n' && [ "$(cat "$d/err")" = e ]
}

t_files() {
	printf 'over\0ssh\n' | timeout 60 "$SWEREX_CLI" -S "$url" write "$d/files/f" \
	    >"$d/out" 2>"$d/err"
	rc=$?
	rc_is 0 || return 1
	printf 'over\0ssh\n' | cmp -s - "$d/files/f" || {
		echo "# $d/files/f differs"; return 1; }
	cli read "$d/files/f"
	rc_is 0 && out_is 'over\0ssh\n'
}

t_download() {
	# Several MiB cross ssh's channel windows in both directions.
	head -c 5000000 /dev/urandom >"$d/big" || return 1
	cli upload "$d/big" "$d/files/big"
	rc_is 0 && cmp -s "$d/big" "$d/files/big" || {
		echo "# upload differs"; diag; return 1; }
	cli download "$d/files/big" "$d/big.down"
	rc_is 0 && cmp -s "$d/big" "$d/big.down" || {
		echo "# download differs"; diag; return 1; }
}

t_close() {
	cli session close -s fwd
	rc_is 0 || return 1
	cli --json session list
	rc_is 0 && out_is '[]\n'
}

t_ssh_gone() {
	# Without the ssh process the local socket leads nowhere; the daemon
	# itself is untouched and still serves its own socket.
	tap_stop "$ssh_pid"
	cli alive
	rc_is 1 && err_kind CONNECT || return 1
	timeout 60 "$SWEREX_CLI" -S "unix:$remote" alive >"$d/out" 2>"$d/err"
	rc=$?
	rc_is 0
}

t_daemon_exit() {
	tap_stop "$daemon_pid"
	rc_is 0 || { diag_file "swerexd log" "$d/swerexd.log"; return 1; }
	[ ! -e "$remote" ] || { echo "# $remote left behind"; return 1; }
	# sshd's own exit status on SIGTERM is not ours to judge.
	tap_stop "$sshd_pid"
}

tests=(
	"t_sshd:private sshd listens on 127.0.0.1"
	"t_swerexd:swerexd serves a Unix socket"
	"t_forward:ssh -L forwards a local socket to swerexd's"
	"t_session_state:a session keeps cd and variables over the forward"
	"t_exit_codes:exit codes and NON_ZERO_EXIT_CODE over the forward"
	"t_exec:exec over the forward"
	"t_files:write and read a file over the forward"
	"t_download:upload and download 5 MB over the forward"
	"t_close:session close over the forward"
	"t_ssh_gone:without ssh the local socket is dead, the daemon is not"
	"t_daemon_exit:swerexd exits 0 on SIGTERM and removes its socket"
)

tap_main
