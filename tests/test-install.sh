#!/usr/bin/env bash
# meson install into a DESTDIR, then use what was installed the way a user
# would: build a small program against libswerex through pkg-config (shared
# and static), run it and the installed swerex against the installed
# swerexd, and check the soname, the man pages and that the systemd units
# start the installed binary. Prints TAP.
set -u

: "${MESON:?set MESON to the meson command}"
: "${BUILD_ROOT:?set BUILD_ROOT to the build directory}"
: "${EXAMPLE_C:?set EXAMPLE_C to tests/install-example.c}"
: "${PREFIX:?}" "${BINDIR:?}" "${SBINDIR:?}" "${LIBDIR:?}" "${INCLUDEDIR:?}"
: "${MANDIR:?}" "${USERUNITDIR:?}"

. "$(dirname "$0")/tap.sh"

dest=$tap_dir/dest
sock=$tap_dir/swerexd.sock
url=unix:$sock
daemon_pid=
# The ASan build's libswerex needs its runtime in the program, too.
cflags=()
case ${B_SANITIZE:-none} in
none|'') ;;
*) cflags=(-fsanitize="$B_SANITIZE") ;;
esac

# pkg-config reading the DESTDIR's libswerex.pc; the sysroot puts the
# DESTDIR in front of the paths it prints.
pc() {
	PKG_CONFIG_PATH=$dest$LIBDIR/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest \
	    pkg-config "$@"
}

# Whether every path exists in the DESTDIR (as a file or a symlink to one).
installed() {
	local p fail=0
	for p in "$@"; do
		[ -f "$dest$p" ] && continue
		echo "# not installed: $p"
		fail=1
	done
	return "$fail"
}

t_install() {
	"$MESON" install -C "$BUILD_ROOT" --no-rebuild --quiet \
	    --destdir "$dest" >"$tap_dir/out" 2>&1
	rc=$?
	[ "$rc" -eq 0 ] || { echo "# meson install: exit $rc"; diag_file output "$tap_dir/out"; return 1; }
	( cd "$dest" && find . ! -type d | sort | sed 's/^\./#   /' )
	installed "$SBINDIR/swerexd" "$BINDIR/swerex" "$BINDIR/swerex-tunnel" \
	    "$BINDIR/swerex-certs" "$INCLUDEDIR/swerex.h" \
	    "$LIBDIR/libswerex.so" "$LIBDIR/libswerex.so.2" "$LIBDIR/libswerex.a" \
	    "$LIBDIR/pkgconfig/libswerex.pc" "$MANDIR/man8/swerexd.8" \
	    "$MANDIR/man1/swerex.1" "$MANDIR/man1/swerex-tunnel.1" \
	    "$MANDIR/man3/libswerex.3" "$USERUNITDIR/swerexd.service" \
	    "$USERUNITDIR/swerexd.socket" "$USERUNITDIR/swerexd-tls.service" \
	    "$LIBDIR/swerexd/swerexd-tls.so" ||
		return 1
	[ -x "$dest$BINDIR/swerex-certs" ] || { echo "# swerex-certs not executable"; return 1; }
}

t_soname() {
	local so=$dest$LIBDIR/libswerex.so.2
	readelf -d "$so" >"$tap_dir/out" 2>&1 || { diag_file readelf "$tap_dir/out"; return 1; }
	grep -q 'Library soname: \[libswerex\.so\.2\]' "$tap_dir/out" ||
		{ echo "# no soname libswerex.so.2"; diag_file "readelf -d" "$tap_dir/out"; return 1; }
	# The CLI finds the library by its soname.
	readelf -d "$dest$BINDIR/swerex" >"$tap_dir/out" 2>&1
	grep -q 'Shared library: \[libswerex\.so\.2\]' "$tap_dir/out" ||
		{ echo "# swerex does not need libswerex.so.2"; diag_file "readelf -d" "$tap_dir/out"; return 1; }
}

# swerexd links no OpenSSL; its TLS module does, and the daemon looks for
# the module where it was installed.
t_tls_module() {
	readelf -d "$dest$SBINDIR/swerexd" >"$tap_dir/out" 2>&1
	if grep -E 'Shared library: \[lib(ssl|crypto)' "$tap_dir/out"; then
		echo "# swerexd needs OpenSSL itself"
		return 1
	fi
	readelf -d "$dest$LIBDIR/swerexd/swerexd-tls.so" >"$tap_dir/out" 2>&1
	grep -q 'Shared library: \[libssl' "$tap_dir/out" ||
		{ diag_file "readelf -d swerexd-tls.so" "$tap_dir/out"; return 1; }
	# Outside the DESTDIR nothing is installed, so it says where it looked.
	[ -e "$LIBDIR/swerexd/swerexd-tls.so" ] &&
		{ echo "# (a module is installed in $LIBDIR/swerexd: path not checked)"; return 0; }
	HOME=$tap_dir "$dest$SBINDIR/swerexd" --listen "unix:$tap_dir/tls.sock" \
	    --listen tls://127.0.0.1:0 --tls-cert "$tap_dir/none.pem" \
	    --tls-key "$tap_dir/none.key" >"$tap_dir/out" 2>&1
	rc=$?
	rc_is 1 || return 1
	grep -qF "TLS is not available: swerexd-tls.so is neither beside swerexd nor in $LIBDIR/swerexd" \
	    "$tap_dir/out" || { diag_file stderr "$tap_dir/out"; return 1; }
}

t_pkgconfig() {
	pc --cflags --libs libswerex >"$tap_dir/flags" 2>&1 ||
		{ diag_file pkg-config "$tap_dir/flags"; return 1; }
	grep -qF -- "-I$dest$INCLUDEDIR" "$tap_dir/flags" &&
	    grep -qF -- "-L$dest$LIBDIR" "$tap_dir/flags" &&
	    grep -qF -- "-lswerex" "$tap_dir/flags" && return 0
	diag_file "pkg-config --cflags --libs libswerex" "$tap_dir/flags"
	return 1
}

t_build_shared() {
	# Only what pkg-config says: no path into the source or build tree.
	# shellcheck disable=SC2046
	cc "${cflags[@]}" -o "$tap_dir/example" "$EXAMPLE_C" \
	    $(pc --cflags --libs libswerex) >"$tap_dir/out" 2>&1 && return 0
	diag_file cc "$tap_dir/out"
	return 1
}

t_build_static() {
	# libswerex.a alone must hold the library (the wire and TLS code too);
	# its dependencies come from pkg-config --static.
	# shellcheck disable=SC2046
	cc "${cflags[@]}" -o "$tap_dir/example-static" "$EXAMPLE_C" \
	    $(pc --cflags libswerex) "$dest$LIBDIR/libswerex.a" \
	    $(pc --static --libs libswerex | sed 's/-lswerex//') \
	    >"$tap_dir/out" 2>&1 && return 0
	diag_file cc "$tap_dir/out"
	return 1
}

t_daemon() {
	mkdir "$tap_dir/home" || return 1
	# HOME is private so the user's ~/.bashrc cannot change the sessions.
	HOME=$tap_dir/home tap_start_ready "$tap_dir/daemon.log" \
	    "$dest$SBINDIR/swerexd" --listen "$url" --ready-fd 3 || return 1
	daemon_pid=$tap_pid
}

# Run an example program against the daemon; check its three lines, the
# library line starting with $2.
run_example() {
	local prog=$1 lib=$2 version
	shift 2
	version=$("$dest$SBINDIR/swerexd" --version | cut -d' ' -f2)
	timeout 60 env "$@" "$prog" "$url" >"$tap_dir/out" 2>"$tap_dir/err"
	rc=$?
	rc_is 0 || return 1
	printf 'library=%s\ndaemon=%s\noutput=42\n' "$lib" "$version" \
	    >"$tap_dir/expected"
	cmp -s "$tap_dir/expected" "$tap_dir/out" && return 0
	diag_file expected "$tap_dir/expected"
	diag_file got "$tap_dir/out"
	return 1
}

t_run_shared() {
	run_example "$tap_dir/example" "$dest$LIBDIR/libswerex.so.2" \
	    LD_LIBRARY_PATH="$dest$LIBDIR"
}

t_run_static() {
	run_example "$tap_dir/example-static" "$tap_dir/example-static"
}

t_cli() {
	LD_LIBRARY_PATH=$dest$LIBDIR SWEREX_CLI=$dest$BINDIR/swerex cli \
	    session create
	rc_is 0 || return 1
	LD_LIBRARY_PATH=$dest$LIBDIR SWEREX_CLI=$dest$BINDIR/swerex cli \
	    run 'echo installed'
	rc_is 0 && out_is 'installed\n'
}

t_python() {
	# The package as installed (protobuf module generated at build time),
	# imported from the DESTDIR alone, against the installed daemon.
	local init dir py=python3
	[ -x /usr/bin/python3 ] && py=/usr/bin/python3
	init=$(find "$dest" -path '*/swerexd/__init__.py' | head -1)
	[ -n "$init" ] && [ -f "${init%/*}/swerex_pb2.py" ] ||
		{ echo "# no swerexd package with its swerex_pb2.py installed"; return 1; }
	dir=${init%/swerexd/__init__.py}
	(cd "$tap_dir" && PYTHONPATH=$dir timeout 60 "$py" -c '
import sys, swerexd
assert swerexd.__file__.startswith(sys.argv[2]), swerexd.__file__
rt = swerexd.SyncRuntime(sys.argv[1])
r = rt.execute(swerexd.Command(command="echo py-installed", shell=True))
print(r.stdout, end="")
rt.close()
' "$url" "$dir") >"$tap_dir/out" 2>"$tap_dir/err"
	rc=$?
	rc_is 0 && out_is 'py-installed\n'
}

t_units() {
	local u line fail=0
	for u in swerexd.service swerexd-tls.service; do
		line=$(grep '^ExecStart=' "$dest$USERUNITDIR/$u")
		case $line in
		"ExecStart=$SBINDIR/swerexd" | "ExecStart=$SBINDIR/swerexd "*) ;;
		*) echo "# $u: '$line' is not $SBINDIR/swerexd"; fail=1 ;;
		esac
	done
	if grep -n '@[a-z]*@' "$dest$USERUNITDIR"/* >"$tap_dir/out"; then
		diag_file "unsubstituted" "$tap_dir/out"
		fail=1
	fi
	[ -x "$dest$SBINDIR/swerexd" ] || fail=1
	return "$fail"
}

t_stop() {
	tap_stop "$daemon_pid"
	rc_is 0 || { diag_file log "$tap_dir/daemon.log"; return 1; }
	[ ! -e "$sock" ] || { echo "# $sock left behind"; return 1; }
}

tests=(
	"t_install:meson install --destdir installs binaries, library, header, .pc, man pages, units"
	"t_soname:libswerex.so.2 has soname libswerex.so.2; swerex needs it"
	"t_tls_module:swerexd needs no OpenSSL; its installed TLS module does, and swerexd looks in $LIBDIR/swerexd"
	"t_pkgconfig:pkg-config finds libswerex in the DESTDIR"
	"t_build_shared:an external program builds against libswerex.so via pkg-config"
	"t_build_static:it builds against libswerex.a via pkg-config --static"
	"t_daemon:the installed swerexd starts and is ready"
	"t_run_shared:the program runs a command through the DESTDIR's libswerex.so.2"
	"t_run_static:the static build runs a command with no libswerex.so"
	"t_cli:the installed swerex runs a command"
	"t_python:the installed Python package (with its generated protobuf module) runs a command"
	"t_units:installed units start $SBINDIR/swerexd"
	"t_stop:the installed swerexd exits 0 on SIGTERM"
)

tap_main
