#!/usr/bin/env bash
# Run one libFuzzer target for a bounded time on a copy of its seed corpus
# and print one TAP line: how many inputs ran and whether it crashed.
#   run.sh TARGET CORPUS_DIR [SECONDS [libFuzzer options...]]
# SECONDS defaults to $FUZZ_SECONDS, else 20. A crashing input is kept in
# $FUZZ_ARTIFACTS (default: the scratch directory, which is then kept).
set -uo pipefail

target=$1 corpus=$2
seconds=${3:-${FUZZ_SECONDS:-20}}
shift $(( $# < 3 ? $# : 3 ))
name=$(basename "$target")

scratch=$(mktemp -d "${TMPDIR:-/tmp}/swerex-$name.XXXXXX") || exit 1
artifacts=${FUZZ_ARTIFACTS:-$scratch/artifacts}
mkdir -p "$scratch/corpus" "$artifacts"
# The run adds what it finds to its corpus: never to the repository's.
cp -r "$corpus/." "$scratch/corpus/" 2>/dev/null || true

# Undefined behaviour is a crash too; leaks are checked after each input.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}

# What each target needs: dispatch inputs start bash sessions (slow, and a
# sanitizer report is slower still); the filter's 4 KiB chunks need more.
case $name in
fuzz-dispatch) opts=(-timeout=60 -max_len=4096) ;;
fuzz-filter) opts=(-max_len=16384) ;;
*) opts=() ;;
esac

echo "1..1"
"$target" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${opts[@]}" "$@" "$scratch/corpus" \
    >"$scratch/log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/log" | tail -n 1)
crash=$(ls "$artifacts" 2>/dev/null | head -n 1)
if [ "$rc" -eq 0 ] && [ -z "$crash" ] && [ -n "$execs" ]; then
	echo "ok 1 - $name: ${execs} executions in ${seconds} s, no crash"
	# What the target says it checked (fuzz-dispatch prints a summary).
	grep "^$name: " "$scratch/log" | sed 's/^/# /'
	rm -rf "$scratch"
	exit 0
fi
echo "not ok 1 - $name: exit status $rc after ${execs:-?} executions; crash input: ${crash:+$artifacts/$crash}"
tail -n 60 "$scratch/log" | sed 's/^/# /'
echo "# full log and corpus kept in $scratch"
exit 1
