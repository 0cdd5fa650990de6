#!/bin/sh
# TAP check run last in meson's valgrind setup: every report swerexd.sh left
# in $SWEREX_VALGRIND_DIR must show no memcheck error and no definite or
# indirect leak. A report without its final summary (a daemon killed with
# SIGKILL on purpose) is still searched for the errors memcheck printed
# before the kill. A failure quotes the report's first error as comments.
dir=${SWEREX_VALGRIND_DIR:?set SWEREX_VALGRIND_DIR to the report dir}
n=0 bad=0 partial=0 badlist=

# Print the report's command line and its first error block as comments.
show() {
	echo "# $1:"
	grep -m1 '== Command:' "$1" | sed 's/^/#   /'
	awk '/== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and destination|Argument|Jump to|.*are (definitely|indirectly) lost)/ { on = 1 }
	    on && /^==[0-9]+== *$/ { exit }
	    on { print "#   " $0; if (++k >= 40) exit }' "$1"
}

for f in "$dir"/vg.*; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	if ! grep -q 'ERROR SUMMARY:' "$f"; then
		partial=$((partial + 1))
	fi
	if grep -Eq '== (Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Argument .* of function|Jump to the invalid)' "$f" ||
	    grep -Eq 'are (definitely|indirectly) lost' "$f" ||
	    grep -Eq 'ERROR SUMMARY: [1-9]' "$f"; then
		bad=$((bad + 1))
		badlist="$badlist $f"
	fi
done

echo "1..2"
if [ "$n" -gt 0 ]; then
	echo "ok 1 - valgrind reports found: $n daemons ran under memcheck ($partial killed before their summary)"
else
	echo "not ok 1 - no valgrind report in $dir (did the suite run with --setup valgrind?)"
fi
if [ "$bad" -eq 0 ] && [ "$n" -gt 0 ]; then
	echo "ok 2 - no memcheck error and no definite or indirect leak in $n reports"
else
	echo "not ok 2 - $bad of $n valgrind reports show errors or leaks"
	for f in $badlist; do
		show "$f"
	done
fi
[ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
