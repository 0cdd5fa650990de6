#!/usr/bin/env bash
# Set up, build, run and test swerexd on a Debian machine.
#   ./contrib/dev.sh run [swerexd options]   build and start swerexd on its default socket
#   ./contrib/dev.sh test                    build (plain, ASan+UBSan, static, fuzz) and run every test
#   ./contrib/dev.sh build                   build only (into build/)
#   ./contrib/dev.sh deps                    install missing Debian packages
#   ./contrib/dev.sh bench [quick]           release build; swerexd, floor, tmux side by side
#   ./contrib/dev.sh fuzz [SECONDS]          libFuzzer targets, SECONDS each (default 60)
#   ./contrib/dev.sh soak [MINUTES]          mixed load on a private swerexd (default 10 min)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

pkgs=(libevent-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev meson
      ninja-build pkg-config gcc libc6-dev python3 bash procps less openssl
      protobuf-compiler python3-protobuf)
# Only the tests need these: file and readelf for the static binary, a
# private sshd (the system's ssh service is never used), socket activation,
# groff for the man pages, unshare for the syslog test, the Python client's
# tests; valgrind: the integration suite runs once more under memcheck;
# qemu, a static busybox and xz: test-rlimit's cgroup tests run in a guest
# (tests/vm/, which fetches Debian's kernel itself).
test_pkgs=(file binutils openssh-client openssh-server systemd groff-base
           util-linux python3-pytest valgrind qemu-system-x86 busybox-static
           xz-utils)
# Only the benchmarks need these: the tmux peer and the plot.
bench_pkgs=(tmux gnuplot-nox)
# Only the fuzz targets need these: clang and its sanitizer/libFuzzer runtimes.
fuzz_pkgs=(clang libclang-rt-14-dev)
fuzz_targets=(fuzz-wire fuzz-filter fuzz-dispatch)

deps() {
	local missing=() p
	for p in "${pkgs[@]}" "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "dev.sh: installing ${missing[*]}" >&2
	local sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq || true
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# build DIR [meson options...]
build() {
	local dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >&2
	fi
	ninja -C "$dir" >&2
}

# Build the fuzz targets in build-fuzz (clang, ASan+UBSan, libFuzzer).
build_fuzz() {
	if [ ! -f build-fuzz/build.ninja ]; then
		CC=clang meson setup build-fuzz -Dfuzz=true \
		    -Db_sanitize=address,undefined -Db_lundef=false >&2
	fi
	ninja -C build-fuzz "${fuzz_targets[@]/#/tests/fuzz/}" >&2
}

# Count TAP lines of every test in a meson test log; a test that failed
# without reporting a failed case (crash, timeout) counts as one failure.
# Skipped cases ("ok N - ... # SKIP why") are counted apart, never as passed.
summarize() {
	python3 - "$@" <<'PY'
import json, re, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    for line in open(path):
        t = json.loads(line)
        out = t.get("stdout") or ""
        # A skipped case ("ok N # SKIP why") counts neither way.
        skip = len(re.findall(r"^ok \d+[^\n]*# SKIP", out, re.M))
        skipped += skip
        ok = len(re.findall(r"^ok \d+", out, re.M)) - skip
        bad = len(re.findall(r"^not ok \d+", out, re.M))
        if ok == 0 and bad == 0 and skip == 0:
            ok, bad = (1, 0) if t["result"] == "OK" else (0, 1)
        elif t["result"] != "OK" and bad == 0:
            bad = 1
        passed += ok
        failed += bad
if skipped:
    print(f"{skipped} skipped (not counted)")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
deps)
	deps ;;
build)
	deps
	build build ;;
run)
	deps
	build build
	exec build/daemon/swerexd "$@" ;;
test)
	deps "${test_pkgs[@]}" "${fuzz_pkgs[@]}"
	build build
	build build-asan -Db_sanitize=address,undefined -Db_lundef=false
	build build-static -Dstatic=true -Ddefault_library=static \
	    -Dbuildtype=minsize -Ddebug=false
	rc=0
	# The guest kernel for the vm suite (cached; rlimit-vm skips without
	# it, which summarize counts as a failure).
	tests/vm/fetch.sh || rc=1
	meson test -C build --print-errorlogs "$@" || rc=1
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		meson test -C build-asan --print-errorlogs "$@" || rc=1
	meson test -C build-static --print-errorlogs --suite static || rc=1
	# Every daemon of the integration suite under valgrind; valgrind-check
	# then reads the reports (tests/valgrind/).
	rm -rf build/meson-logs/valgrind
	# (The soak's RSS rule means nothing under valgrind: left out.)
	meson test -C build --setup valgrind --print-errorlogs \
	    --suite integration --suite valgrind --no-suite soak "$@" || rc=1
	# Fuzz targets: about 20 s each (FUZZ_SECONDS), one TAP line each.
	build_fuzz
	meson test -C build-fuzz --no-rebuild --print-errorlogs --suite fuzz || rc=1
	summarize build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
	    build-static/meson-logs/testlog.json \
	    build/meson-logs/testlog-valgrind.json \
	    build-fuzz/meson-logs/testlog.json || rc=1
	exit $rc ;;
bench)
	# Rounds: BENCH_ROUNDS (default 3); quick: tiny sizes for a smoke run.
	deps "${bench_pkgs[@]}"
	build build-release -Dbuildtype=release
	# The single static binary, for the start-up row of its own.
	build build-release-static -Dbuildtype=release -Dstatic=true \
	    -Ddefault_library=static
	BENCH_STATIC_DAEMON=$PWD/build-release-static/daemon/swerexd \
	    exec tests/bench/run.sh build-release "$@" ;;
fuzz)
	# Each target for SECONDS on a scratch copy of its seed corpus.
	deps "${fuzz_pkgs[@]}"
	build_fuzz
	rc=0
	for t in "${fuzz_targets[@]}"; do
		tests/fuzz/run.sh "build-fuzz/tests/fuzz/$t" \
		    "tests/fuzz/corpus/${t#fuzz-}" "${1:-60}" | grep -v '^1\.\.' || rc=1
	done
	exit $rc ;;
soak)
	# tests/soak/soak.c: TAP and a summary on stdout, non-zero on failure.
	deps
	build build
	exec build/tests/soak/soak --minutes "${1:-10}" \
	    --daemon build/daemon/swerexd ;;
*)
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	[ -z "$cmd" ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2 ;;
esac
