#!/usr/bin/env bash
# The man pages tell the truth: every long option a program's --help names
# (for swerex, every command's --help too) is in its man page, the version
# line --version prints is quoted there, and groff renders each page
# without a warning. Prints TAP.
set -u

: "${SWEREXD:?set SWEREXD to the swerexd binary}"
: "${SWEREX_CLI:?set SWEREX_CLI to the swerex binary}"
: "${SWEREX_TUNNEL:?set SWEREX_TUNNEL to the swerex-tunnel binary}"
: "${MAN_DIR:?set MAN_DIR to the built man pages (build/doc)}"

. "$(dirname "$0")/tap.sh"

# Print a man page's text as written, without roff's escapes for a minus
# sign, font changes and zero-width breaks, so that "\-\-listen" and
# "\fB\-\-listen\fR" read as --listen.
man_text() {
	sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\&//g' \
	    -e 's/\\(dq/"/g' "$MAN_DIR/$1"
}

# Whether every --option in the help text $2 appears in man page $1.
options_documented() {
	local page=$1 help=$2 opt missing=0
	man_text "$page" >"$tap_dir/man.txt" || return 1
	for opt in $(grep -o -e '--[a-z][a-z0-9-]*' "$help" | sort -u); do
		grep -qF -e "$opt" "$tap_dir/man.txt" && continue
		echo "# $page does not mention $opt"
		missing=1
	done
	# A help text without options would make the check vacuous.
	grep -q -e '--help' "$help" || { echo "# no --help in the help"; return 1; }
	return "$missing"
}

# Whether the first line of "$2 --version" is quoted in man page $1.
version_documented() {
	local page=$1 line
	shift
	line=$("$@" --version) || { echo "# $* --version failed"; return 1; }
	case $line in
	*"(protocol "[0-9]*")") ;;
	*) echo "# --version does not name the protocol: '$line'"; return 1 ;;
	esac
	man_text "$page" | grep -qF -e "$line" && return 0
	echo "# $page does not quote '$line'"
	return 1
}

t_swerexd_options() {
	"$SWEREXD" --help >"$tap_dir/help" || return 1
	options_documented swerexd.8 "$tap_dir/help"
}

t_swerex_options() {
	local c fail=0
	"$SWEREX_CLI" --help >"$tap_dir/help" || return 1
	options_documented swerex.1 "$tap_dir/help" || fail=1
	for c in alive session "session create" "session close" "session list" \
	    run interrupt resize exec read write upload download stats history; do
		# $c is split into a command and its subcommand on purpose.
		# shellcheck disable=SC2086
		"$SWEREX_CLI" $c --help >"$tap_dir/help" ||
			{ echo "# swerex $c --help failed"; fail=1; continue; }
		options_documented swerex.1 "$tap_dir/help" || fail=1
		man_text swerex.1 | grep -q "^\.SS \"\{0,1\}$c\"\{0,1\}$" ||
			[ "$c" = session ] ||
			{ echo "# swerex.1 has no section for $c"; fail=1; }
	done
	return "$fail"
}

t_tunnel_options() {
	"$SWEREX_TUNNEL" --help >"$tap_dir/help" || return 1
	options_documented swerex-tunnel.1 "$tap_dir/help"
}

t_versions() {
	local fail=0
	version_documented swerexd.8 "$SWEREXD" || fail=1
	version_documented swerex.1 "$SWEREX_CLI" || fail=1
	version_documented swerex-tunnel.1 "$SWEREX_TUNNEL" || fail=1
	return "$fail"
}

t_libswerex_functions() {
	# Every function swerex.h exports is named in libswerex(3).
	local f fail=0
	[ -n "${SWEREX_H:-}" ] || { echo "# set SWEREX_H to lib/swerex.h"; return 1; }
	man_text libswerex.3 >"$tap_dir/man.txt" || return 1
	for f in $(sed -n 's/.*SWEREX_API[^(]*[ *]\(swerex_[a-z_]*\)(.*/\1/p' \
	    "$SWEREX_H"); do
		grep -qF -e "$f" "$tap_dir/man.txt" && continue
		echo "# libswerex.3 does not mention $f"
		fail=1
	done
	return "$fail"
}

t_render() {
	local m fail=0
	command -v groff >/dev/null || {
		echo "# groff missing: apt-get install groff-base"; return 1; }
	for m in swerexd.8 swerex.1 swerex-tunnel.1 libswerex.3; do
		# -ww: every warning; -z: no output, only the diagnostics.
		groff -man -Tutf8 -ww -z "$MAN_DIR/$m" >"$tap_dir/groff" 2>&1 ||
			fail=1
		[ -s "$tap_dir/groff" ] || continue
		diag_file "groff on $m" "$tap_dir/groff"
		fail=1
	done
	return "$fail"
}

tests=(
	"t_swerexd_options:swerexd(8) documents every option of swerexd --help"
	"t_swerex_options:swerex(1) documents every option and command of swerex"
	"t_tunnel_options:swerex-tunnel(1) documents every option of its --help"
	"t_versions:each --version names the protocol and its man page quotes it"
	"t_libswerex_functions:libswerex(3) names every function of swerex.h"
	"t_render:groff renders every page without a warning"
)

tap_main
