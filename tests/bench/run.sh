#!/usr/bin/env bash
# Run every benchmark scenario for swerexd, the raw pty floor and tmux control
# mode, interleaved (for each scenario: swerexd, floor, tmux, then again for
# each round), so machine noise hits all three alike. Writes
#   BUILD/bench/results.csv  every metric of every round
#   BUILD/bench/table.txt    medians over the rounds, with the ratios
#   BUILD/bench/table.md     the same as a Markdown table
#   BUILD/bench/plot.png     latency and throughput against sessions
# and prints the table.
#   tests/bench/run.sh BUILD [quick]     rounds: $BENCH_ROUNDS (default 3)
#   tests/bench/run.sh BUILD report      table and plot again from results.csv
# With $BENCH_STATIC_DAEMON (a swerexd linked with -Dstatic=true), start-up
# is measured for that single binary too, as param "static".
# An implementation whose program is missing is skipped; a program that fails
# or times out is told on stderr and the run goes on (benchmarks report, they
# never fail).
set -uo pipefail

build=${1:?usage: run.sh BUILD [quick]}
mode=${2:-full}
rounds=${BENCH_ROUNDS:-3}
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$build" && pwd)
out=$build/bench
daemon=$build/daemon/swerexd
mkdir -p "$out"
csv=$out/results.csv
log=$out/run.log
if [ "$mode" = report ]; then
	[ -s "$csv" ] || { echo "run.sh: no $csv to report" >&2; exit 1; }
	rounds=$(tail -n +2 "$csv" | cut -d, -f1 | sort -n | tail -1)
	scenarios=()
else
	: > "$log"
	echo "round,impl,scenario,param,metric,value,unit" > "$csv"
fi

impls=()
[ "$mode" = report ] || for impl in swerexd floor tmux; do
	if [ -x "$build/tests/bench/bench-$impl" ]; then
		impls+=("$impl")
	else
		echo "run.sh: bench-$impl not built; skipping it" >&2
	fi
done
[ "$mode" = report ] || [ ${#impls[@]} -gt 0 ] || { echo "run.sh: no benchmark programs in $build/tests/bench" >&2; exit 1; }

# One scenario per line: the arguments every program gets. A leading "!floor"
# skips the floor (it has no connections to spread sessions over).
if [ "$mode" = report ]; then
	limit=0
elif [ "$mode" = quick ]; then
	sizes=(1 10 100)
	scenarios=(
		"--scenario echo --iterations 200"
		"--scenario create --iterations 10"
		"--scenario create --iterations 10 --rc"
	)
	for n in "${sizes[@]}"; do
		scenarios+=("--scenario concurrent --sessions $n --iterations 20")
		[ $n -gt 1 ] && scenarios+=("!floor --scenario concurrent --sessions $n --iterations 20 --connections $n")
	done
	scenarios+=(
		"--scenario hol --iterations 100 --bytes 100000000"
		"--scenario throughput --bytes 20000000"
		"--scenario cost --sessions 100 --iterations 5"
		"--scenario startup --iterations 5"
	)
	limit=300
else
	sizes=(1 10 100 300 1000)
	scenarios=(
		"--scenario echo --iterations 10000"
		"--scenario create --iterations 100"
		"--scenario create --iterations 100 --rc"
	)
	# About 20000 commands per run, at most 1000 per session.
	for n in "${sizes[@]}"; do
		m=$((20000 / n)); [ $m -gt 1000 ] && m=1000
		scenarios+=("--scenario concurrent --sessions $n --iterations $m")
		[ $n -gt 1 ] && scenarios+=("!floor --scenario concurrent --sessions $n --iterations $m --connections $n")
	done
	scenarios+=(
		"--scenario hol --iterations 1000 --bytes 1073741824"
		"--scenario throughput --bytes 200000000"
		"--scenario cost --sessions 1000 --iterations 20"
		"--scenario startup --iterations 20"
	)
	limit=900
fi

for spec in "${scenarios[@]}"; do
	skip=
	case $spec in "!"*) skip=${spec%% *}; skip=${skip#!}; spec=${spec#* } ;; esac
	for ((r = 1; r <= rounds; r++)); do
		for impl in "${impls[@]}"; do
			[ "$impl" = "$skip" ] && continue
			echo "run.sh: round $r: bench-$impl $spec" >&2
			# shellcheck disable=SC2086
			lines=$(timeout -k 10 "$limit" "$build/tests/bench/bench-$impl" \
			    $spec --daemon "$daemon" 2>>"$log")
			rc=$?
			[ $rc -eq 0 ] || echo "run.sh: bench-$impl $spec: exit $rc (see $log)" >&2
			[ -n "$lines" ] && printf '%s\n' "$lines" | sed "s/^/$r,/" >> "$csv"
		done
		# The static binary's start: no dynamic loader, no shared libraries.
		if [ "$mode" != report ] && [ "${spec#--scenario startup}" != "$spec" ] &&
		    [ -x "${BENCH_STATIC_DAEMON:-}" ] && [[ " ${impls[*]} " == *" swerexd "* ]]; then
			echo "run.sh: round $r: bench-swerexd $spec (static)" >&2
			# shellcheck disable=SC2086
			lines=$(timeout -k 10 "$limit" "$build/tests/bench/bench-swerexd" \
			    $spec --daemon "$BENCH_STATIC_DAEMON" 2>>"$log")
			[ -n "$lines" ] && printf '%s\n' "$lines" |
			    sed "s/^swerexd,startup,,/$r,swerexd,startup,static,/" |
			    grep "^$r," >> "$csv"
		fi
	done
done

/usr/bin/python3 - "$csv" "$out" <<'PY'
import csv, re, statistics, sys
from collections import OrderedDict

path, out = sys.argv[1], sys.argv[2]
vals = OrderedDict()   # (scenario, param, metric) -> {impl: [values]}
units = {}
errs = {}              # (scenario, impl, round) -> errors in that round
with open(path) as f:
    for row in csv.DictReader(f):
        try:
            v = float(row["value"])
        except ValueError:
            continue
        if row["metric"] == "errors":
            # Programs count errors per run or per size: one row per
            # scenario, summed over a round, so every column lines up.
            k = (row["scenario"], row["impl"], row["round"])
            errs[k] = errs.get(k, 0) + v
            continue
        key = (row["scenario"], row["param"], row["metric"])
        vals.setdefault(key, {}).setdefault(row["impl"], []).append(v)
        units.setdefault(key, row["unit"])
for (scenario, impl, rnd), v in errs.items():
    key = (scenario, "", "errors")
    vals.setdefault(key, {}).setdefault(impl, []).append(v)
    units.setdefault(key, "count")

def med(key, impl):
    v = vals[key].get(impl)
    return statistics.median(v) if v else None

def fmt(x):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return "%d" % round(x)
    return "%.3g" % x

def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b not in (None, 0) else "-"

head = ["scenario", "param", "metric", "swerexd", "floor", "tmux",
        "swerexd/floor", "tmux/swerexd"]
rows = []
for key in vals:
    s, f, t = med(key, "swerexd"), med(key, "floor"), med(key, "tmux")
    rows.append([key[0], key[1] or "-", "%s (%s)" % (key[2], units[key]), fmt(s), fmt(f),
                 fmt(t), ratio(s, f), ratio(t, s)])
width = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
lines = ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip()
         for r in [head] + rows]
text = "\n".join(lines) + "\n"
open(out + "/table.txt", "w").write(text)
md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
md += ["| " + " | ".join(r) + " |" for r in rows]
open(out + "/table.md", "w").write("\n".join(md) + "\n")
sys.stdout.write(text)

# Latency and throughput of the concurrent scenario against the sessions.
with open(out + "/plot.dat", "w") as d:
    d.write("# sessions, then per impl (swerexd floor tmux swerexd-Nconn): "
            "cmds_per_s p50_us p99_us\n")
    sizes = sorted({int(re.match(r"n=(\d+)", k[1]).group(1)) for k in vals
                    if k[0] == "concurrent" and re.match(r"n=\d+", k[1])})
    for n in sizes:
        cols = [str(n)]
        for impl, param in (("swerexd", "n=%d" % n), ("floor", "n=%d" % n),
                            ("tmux", "n=%d" % n),
                            ("swerexd", "n=%d;conns=%d" % (n, n))):
            for m in ("cmds_per_s", "p50", "p99"):
                k = ("concurrent", param, m)
                v = med(k, impl) if k in vals else None
                cols.append("?" if v is None else repr(v))
        d.write(" ".join(cols) + "\n")
PY

if command -v gnuplot >/dev/null; then
	gnuplot <<EOF 2>>"$log" || echo "run.sh: gnuplot failed (see $log)" >&2
set terminal png size 1200,500
set output "$out/plot.png"
set datafile missing "?"
set multiplot layout 1,2 title "concurrent: N sessions, sequential echo hi in each ($mode run, median of $rounds rounds)"
set logscale xy
set xlabel "sessions"
set key left top
set grid
set ylabel "commands/s (all sessions)"
set title "throughput"
plot "$out/plot.dat" u 1:2 w lp t "swerexd (1 conn)", \
     "" u 1:5 w lp t "floor", \
     "" u 1:8 w lp t "tmux -C", \
     "" u 1:11 w lp t "swerexd (N conns)"
set ylabel "per-command latency p50 (us)"
set title "latency"
plot "$out/plot.dat" u 1:3 w lp t "swerexd (1 conn)", \
     "" u 1:6 w lp t "floor", \
     "" u 1:9 w lp t "tmux -C", \
     "" u 1:12 w lp t "swerexd (N conns)"
unset multiplot
EOF
	[ -s "$out/plot.png" ] && echo "run.sh: plot in $out/plot.png" >&2
else
	echo "run.sh: gnuplot not installed; no plot" >&2
fi
echo "run.sh: CSV in $csv, table in $out/table.txt" >&2
