#!/bin/sh
# The exe_wrapper of meson's valgrind test setup: run one test program with
# $SWEREXD replaced by $SWEREX_VALGRIND_WRAPPER (swerexd.sh, made by meson
# from swerexd.sh.in), which starts the real daemon under valgrind. The
# harness and the shell tests then start every daemon through it unawares.
: "${SWEREX_VALGRIND_WRAPPER:?set SWEREX_VALGRIND_WRAPPER to swerexd.sh}"
# Tests that start no daemon (no $SWEREXD) run as they are.
case ${SWEREXD:-} in
''|"$SWEREX_VALGRIND_WRAPPER") ;;
*)	SWEREXD_REAL=$SWEREXD
	SWEREXD=$SWEREX_VALGRIND_WRAPPER
	export SWEREXD_REAL SWEREXD ;;
esac
exec "$@"
