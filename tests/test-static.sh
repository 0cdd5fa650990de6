#!/usr/bin/env bash
# The static swerexd (-Dstatic=true): no interpreter or dynamic section, runs
# alone in an empty chroot (serves, reports failed session starts and keeps
# going, exits 0 on SIGTERM) and outside it with an empty environment. Needs
# root for chroot (else an unprivileged user namespace). Prints TAP.
set -u

: "${SWEREXD:?set SWEREXD to the static swerexd binary}"
: "${SWEREX_CLI:?set SWEREX_CLI to the swerex binary}"
: "${SWEREX_TUNNEL:?set SWEREX_TUNNEL to the static swerex-tunnel binary}"

. "$(dirname "$0")/tap.sh"

root=$tap_dir/root
url=unix:$root/s.sock
daemon_pid=

# The command prefix that runs a program chrooted into a dir: chroot as
# root, else inside a user namespace where we are root (both exec, so $! is
# the daemon's own pid).
if [ "$(id -u)" -eq 0 ]; then
	in_root=(chroot)
else
	in_root=(unshare --user --map-root-user chroot)
fi

t_elf() {
	local size stripped
	file -L "$SWEREXD" >"$tap_dir/out" 2>&1
	grep -q 'statically linked' "$tap_dir/out" || {
		diag_file file "$tap_dir/out"; return 1; }
	readelf -d "$SWEREXD" >"$tap_dir/out" 2>&1
	grep -q 'There is no dynamic section' "$tap_dir/out" || {
		diag_file "readelf -d" "$tap_dir/out"; return 1; }
	readelf -lW "$SWEREXD" >"$tap_dir/out" 2>&1
	if grep -q 'INTERP' "$tap_dir/out"; then
		diag_file "readelf -l" "$tap_dir/out"
		return 1
	fi
	size=$(stat -L -c %s "$SWEREXD")
	stripped=$size
	if strip -o "$tap_dir/stripped" "$SWEREXD" 2>/dev/null; then
		stripped=$(stat -c %s "$tap_dir/stripped")
	fi
	echo "# swerexd size: $size bytes ($stripped stripped)"
}

t_chroot_version() {
	mkdir "$root" && cp "$SWEREXD" "$root/swerexd" || return 1
	# Nothing else in the root: no libc, no /dev, no /etc, no bash.
	ls -A "$root" >"$tap_dir/out"
	out_is 'swerexd\n' || return 1
	"${in_root[@]}" "$root" /swerexd --version >"$tap_dir/out" 2>"$tap_dir/err"
	rc=$?
	rc_is 0 && grep -Eq '^swerexd [0-9.]+ \(protocol 1\)' "$tap_dir/out"
}

t_chroot_ready() {
	HOME=/ tap_start_ready "$tap_dir/chroot.log" \
	    "${in_root[@]}" "$root" /swerexd --listen unix:/s.sock --ready-fd 3 || return 1
	daemon_pid=$tap_pid
	[ -S "$root/s.sock" ] || { echo "# no socket at $root/s.sock"; return 1; }
}

t_chroot_alive() {
	cli alive
	rc_is 0 && out_is 'alive\n'
}

t_chroot_session_fails() {
	cli session create -s nobash
	rc_is 1 && err_kind SESSION_START_FAILED || return 1
	cli --json session list
	rc_is 0 && out_is '[]\n'
}

t_chroot_exec_fails() {
	cli exec -- /bin/true
	rc_is 127 && err_kind FILE_NOT_FOUND
}

t_chroot_files() {
	printf 'in\0root\n' | timeout 60 "$SWEREX_CLI" -S "$url" write /d/f \
	    >"$tap_dir/out" 2>"$tap_dir/err"
	rc=$?
	rc_is 0 || return 1
	printf 'in\0root\n' | cmp -s - "$root/d/f" || {
		echo "# $root/d/f differs"; return 1; }
	cli read /d/f
	rc_is 0 && out_is 'in\0root\n'
}

t_chroot_survives() {
	kill -0 "$daemon_pid" 2>/dev/null || {
		echo "# swerexd died"; diag_file log "$tap_dir/chroot.log"; return 1; }
	cli alive
	rc_is 0 && out_is 'alive\n'
}

t_chroot_term() {
	tap_stop "$daemon_pid"
	rc_is 0 || { diag_file log "$tap_dir/chroot.log"; return 1; }
	[ ! -e "$root/s.sock" ] || { echo "# socket left behind"; return 1; }
}

# Ask the daemon at tls://$1 (HOST:PORT) whether it is alive through the
# CLI, verifying its certificate against the test CA and sending the token.
tls_alive() {
	timeout 60 "$SWEREX_CLI" -S "tls://$1" --ca "$tap_dir/certs/ca.pem" \
	    --token-file "$tap_dir/certs/token" alive
}

t_tls_numeric() {
	local tls=$tap_dir/tls addr
	mkdir "$tls" && cp "$SWEREXD" "$tls/swerexd" || return 1
	"$(dirname "$0")/../contrib/swerex-certs.sh" "$tap_dir/certs" \
	    >"$tap_dir/out" 2>&1 || { diag_file certs "$tap_dir/out"; return 1; }
	cp "$tap_dir/certs/server.pem" "$tap_dir/certs/server.key" \
	    "$tap_dir/certs/token" "$tls/" || return 1
	# The root holds the binary, its certificate and token, and no /etc:
	# a numeric address needs no name service.
	HOME=/ tap_start_ready "$tap_dir/tls.log" "${in_root[@]}" "$tls" /swerexd \
	    --listen tls://127.0.0.1:0 --tls-cert /server.pem \
	    --tls-key /server.key --token-file /token --ready-fd 3 || return 1
	daemon_pid=$tap_pid
	addr=${tap_listen[0]#tls://}
	case $addr in
	127.0.0.1:[1-9]*) ;;
	*) echo "# LISTEN lines: ${tap_listen[*]}"; return 1 ;;
	esac
	tls_alive "$addr" >"$tap_dir/out" 2>"$tap_dir/err"
	rc=$?
	rc_is 0 && out_is 'alive\n' || return 1
	tap_stop "$daemon_pid"
	rc_is 0
}

t_tls_no_resolver() {
	# A name needs /etc/hosts (or DNS); hosts: files without a hosts file
	# makes the failure certain, whatever answers on 127.0.0.1:53.
	mkdir "$tap_dir/tls/etc" &&
	printf 'hosts: files\n' >"$tap_dir/tls/etc/nsswitch.conf" || return 1
	HOME=/ "${in_root[@]}" "$tap_dir/tls" /swerexd --listen tls://localhost:0 \
	    --tls-cert /server.pem --tls-key /server.key --token-file /token \
	    >"$tap_dir/out" 2>"$tap_dir/err" </dev/null
	rc=$?
	rc_is 1 && grep -q 'cannot resolve localhost' "$tap_dir/err" || {
		diag; return 1; }
}

t_tls_hosts() {
	local addr
	printf '127.0.0.1 localhost\n' >"$tap_dir/tls/etc/hosts" || return 1
	HOME=/ tap_start_ready "$tap_dir/tls2.log" "${in_root[@]}" "$tap_dir/tls" \
	    /swerexd --listen tls://localhost:0 --tls-cert /server.pem \
	    --tls-key /server.key --token-file /token --ready-fd 3 || return 1
	daemon_pid=$tap_pid
	addr=${tap_listen[0]#tls://}
	tls_alive "$addr" >"$tap_dir/out" 2>"$tap_dir/err"
	rc=$?
	rc_is 0 && out_is 'alive\n' || { echo "# LISTEN: ${tap_listen[*]}"; return 1; }
	tap_stop "$daemon_pid"
	rc_is 0
}

t_env_ready() {
	mkdir "$tap_dir/home" || return 1
	url=unix:$tap_dir/e.sock
	tap_start_ready "$tap_dir/env.log" env -i LD_LIBRARY_PATH=/nonexistent \
	    HOME="$tap_dir/home" "$SWEREXD" --listen "$url" --ready-fd 3 ||
	    return 1
	daemon_pid=$tap_pid
}

t_env_session() {
	# The daemon's environment (LD_LIBRARY_PATH) reaches the session only
	# when asked for: sessions start from a clean one by default.
	cli session create --inherit-env
	rc_is 0 || return 1
	cli run 'cd /tmp; x=5'
	rc_is 0 && out_is '' || return 1
	cli run 'echo $x; pwd; echo "[$LD_LIBRARY_PATH]"'
	rc_is 0 && out_is '5\n/tmp\n[/nonexistent]\n' || return 1
	cli run --check silent 'false'
	rc_is 1 || return 1
	# A clean session: no LD_LIBRARY_PATH, and a PATH although swerexd has none.
	cli session create -s clean
	rc_is 0 || return 1
	cli run -s clean 'echo "$PATH|${LD_LIBRARY_PATH-unset}"'
	rc_is 0 && out_is '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|unset\n'
}

t_env_exec() {
	cli exec -- sh -c 'echo out; exit 3'
	rc_is 3 && out_is 'out\n'
}

t_tunnel_static() {
	local troot=$tap_dir/troot
	file -L "$SWEREX_TUNNEL" >"$tap_dir/out" 2>&1
	grep -q 'statically linked' "$tap_dir/out" || {
		diag_file file "$tap_dir/out"; return 1; }
	echo "# swerex-tunnel size: $(stat -L -c %s "$SWEREX_TUNNEL") bytes"
	mkdir "$troot" && cp "$SWEREX_TUNNEL" "$troot/swerex-tunnel" || return 1
	"${in_root[@]}" "$troot" /swerex-tunnel --version >"$tap_dir/out" 2>"$tap_dir/err"
	rc=$?
	rc_is 0 && grep -q '^swerex-tunnel ' "$tap_dir/out"
}

t_env_term() {
	tap_stop "$daemon_pid"
	rc_is 0 || { diag_file log "$tap_dir/env.log"; return 1; }
	[ ! -e "$tap_dir/e.sock" ] || { echo "# socket left behind"; return 1; }
}

tests=(
	"t_elf:swerexd has no interpreter and no dynamic section"
	"t_chroot_version:swerexd --version in an empty chroot"
	"t_chroot_ready:swerexd serves a socket from an empty chroot"
	"t_chroot_alive:alive through the chrooted daemon's socket"
	"t_chroot_session_fails:session start without bash: SESSION_START_FAILED"
	"t_chroot_exec_fails:exec of a missing program: FILE_NOT_FOUND"
	"t_chroot_files:write and read a file inside the chroot"
	"t_chroot_survives:the chrooted daemon keeps serving after failures"
	"t_chroot_term:SIGTERM: exit 0, socket removed"
	"t_tls_numeric:TLS on a numeric address from a chroot without /etc"
	"t_tls_no_resolver:a host name without /etc/hosts: exit 1, cannot resolve"
	"t_tls_hosts:a host name from the chroot's /etc/hosts"
	"t_env_ready:swerexd starts with env -i and LD_LIBRARY_PATH=/nonexistent"
	"t_env_session:sessions keep state under the empty environment"
	"t_env_exec:exec under the empty environment"
	"t_env_term:SIGTERM: exit 0, socket removed"
	"t_tunnel_static:swerex-tunnel is static too and runs in an empty chroot"
)

tap_main
