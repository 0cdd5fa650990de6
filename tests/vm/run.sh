#!/usr/bin/env bash
# Run a test program inside a qemu guest (TCG: no KVM needed) whose kernel
# has a pure cgroup v2 hierarchy with memory and pids delegated, something a
# hybrid cgroup host cannot give. The guest's root is the host's own, shared
# read-only (9p), so the program, swerexd, bash and python3 are the host's,
# at the same paths; /tmp, /run and /dev are the guest's own.
#   tests/vm/run.sh PROGRAM [ARGS...]
# The program's stdout and stderr come back unchanged, and its exit status.
# The environment it gets: SWEREX*, MESON_TEST_ITERATION, LANG, and a plain
# PATH, HOME=TMPDIR=/tmp. Without qemu or the guest kernel (tests/vm/fetch.sh)
# it exits 77 (skip) saying so; a guest that does not finish, boot failure
# or SWEREX_VM_TIMEOUT seconds (default 480) gone, is a failure.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${SWEREX_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swerex-vm}
kdir=$cache/kernel
limit=${SWEREX_VM_TIMEOUT:-480}

# Report that the guest cannot be run here.
skip() {
	echo "1..0 # SKIP $*"
	exit 77
}

[ $# -ge 1 ] || { echo "usage: $0 PROGRAM [ARGS...]" >&2; exit 2; }
qemu=$(command -v qemu-system-x86_64) ||
	skip "no qemu-system-x86_64 (Debian: qemu-system-x86)"
[ -f "$kdir/vmlinuz" ] && [ -f "$kdir/modules/order" ] ||
	skip "no guest kernel in $kdir (tests/vm/fetch.sh fetches it)"
kernel=$kdir/vmlinuz
[ ! -f "$kdir/vmlinux" ] || kernel=$kdir/vmlinux
busybox=$(command -v busybox) || skip "no busybox (Debian: busybox-static)"
# The initramfs has no libraries: only a static busybox runs there.
! grep -q /lib64/ld-linux "$busybox" ||
	skip "$busybox is not static (Debian: busybox-static)"
prog=$(realpath "$1")
shift

tmp=$(mktemp -d "${TMPDIR:-/tmp}/swerex-vm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The job: the program with its arguments and environment, in this directory.
{
	printf 'cd %q || exit 125\n' "$PWD"
	printf 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'
	printf 'export HOME=/tmp TMPDIR=/tmp\n'
	while IFS= read -r v; do
		printf 'export %s=%q\n' "$v" "${!v}"
	done < <(compgen -e | grep -E '^(SWEREX[A-Z0-9_]*|MESON_TEST_ITERATION|LANG)$' |
	    grep -vE '^SWEREX_VM_')
	printf 'exec'
	printf ' %q' "$prog" "$@"
	printf '\n'
} > "$tmp/job.sh"

# Host directories the guest's own /tmp and /run would hide (a checkout or
# build directory in /tmp): the program's, the working directory's, and
# those SWEREX* paths name, each shared on its own and mounted over them.
binds=()
for v in PWD prog $(compgen -e | grep -E '^SWEREX[A-Z0-9_]*$'); do
	case ${!v} in
	/tmp/?* | /run/?*) top=$(printf '%s' "${!v}" | cut -d/ -f1-3) ;;
	*) continue ;;
	esac
	[ -d "$top" ] || continue
	case " ${binds[*]} " in *" $top "*) ;; *) binds+=("$top") ;; esac
done
share=()
: > "$tmp/binds"
for i in "${!binds[@]}"; do
	share+=(-fsdev "local,id=b$i,path=${binds[$i]},security_model=none,readonly=on,multidevs=remap"
	    -device "virtio-9p-pci,fsdev=b$i,mount_tag=b$i")
	printf 'b%d %s\n' "$i" "${binds[$i]}" >> "$tmp/binds"
done

# The initramfs: busybox, init, the modules in load order, the job.
mkdir -p "$tmp/initrd/bin" "$tmp/initrd/modules"
cp "$busybox" "$tmp/initrd/bin/busybox"
cp "$here/init" "$tmp/initrd/init"
chmod 755 "$tmp/initrd/init"
cp "$kdir"/modules/* "$tmp/initrd/modules/"
cp "$tmp/job.sh" "$tmp/initrd/job.sh"
cp "$tmp/binds" "$tmp/initrd/binds"
(cd "$tmp/initrd" && find . | "$busybox" cpio -o -H newc 2>/dev/null) > "$tmp/initrd.cpio"

: > "$tmp/out"
: > "$tmp/err"
# TCG (emulation) unless the host offers KVM.
accel=tcg,thread=multi
[ ! -w /dev/kvm ] || accel=kvm
start=$(date +%s.%N)
rc=0
# In the foreground: a test runner's kill of our process group reaches qemu.
timeout --foreground -k 5 "$limit" "$qemu" -nodefaults -no-user-config \
    -display none -no-reboot -machine pc -accel "$accel" -cpu max -smp 2 -m 1G \
    -kernel "$kernel" -initrd "$tmp/initrd.cpio" \
    -append "console=ttyS0 panic=-1 quiet" \
    -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=root,mount_tag=root "${share[@]}" \
    -serial "file:$tmp/console" -serial "file:$tmp/out" \
    -serial "file:$tmp/err" < /dev/null || rc=$?
end=$(date +%s.%N)

cat "$tmp/out"
cat "$tmp/err" >&2
# The console says when the job started (the boot's length, in the guest's
# uptime), when it ended and its status; the kernel's lines may come between.
status=$(sed -n 's/.*swerex-vm: job ended at .*, status \([0-9]*\).*/\1/p' \
    "$tmp/console" | tail -n 1)
up=$(sed -n 's/.*swerex-vm: job \(starts\|ended\) at \([0-9.]*\) s.*/\2/p' \
    "$tmp/console" | tr '\n' ' ')
echo "vm: qemu ran $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", e - s }') s;" \
    "guest uptime at the job's start and end: ${up:-none}" >&2
if [ -z "$status" ]; then
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "not ok - the guest did not finish within ${limit} s" \
		    "(SWEREX_VM_TIMEOUT); its console:"
	else
		echo "not ok - the guest did not run the job (qemu exit $rc);" \
		    "its console:"
	fi
	sed 's/^/# /' "$tmp/console"
	exit 1
fi
exit "$status"
