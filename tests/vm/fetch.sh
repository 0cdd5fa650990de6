#!/usr/bin/env bash
# Fetch the guest kernel for tests/vm/run.sh into the cache: the kernel
# package linux-image-amd64 points at, from Debian's archive, unpacked with
# dpkg-deb -x (never installed: no hooks, nothing on the host changes). Only
# vmlinuz (and the vmlinux in it) and the modules the guest loads are kept,
# with their load order.
#   tests/vm/fetch.sh          fetch unless the cache has a kernel already
# The cache is $SWEREX_VM_CACHE, default ~/.cache/swerex-vm.
set -euo pipefail

cache=${SWEREX_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swerex-vm}
kdir=$cache/kernel
# virtio-pci for the device, 9p over virtio for the host's root file system.
want=(virtio_pci 9pnet_virtio 9p)

[ -f "$kdir/vmlinuz" ] && [ -f "$kdir/modules/order" ] && exit 0

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
if [ -z "$pkg" ]; then
	echo "fetch.sh: apt-cache knows no linux-image-amd64" >&2
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/swerex-vm-fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# As root, apt's download sandbox user could not write into our temp dir.
aptopt=()
[ "$(id -u)" -ne 0 ] || aptopt=(-o APT::Sandbox::User=root)
echo "fetch.sh: downloading $pkg" >&2
if ! (cd "$tmp" && apt-get download -q "${aptopt[@]}" "$pkg" >&2); then
	# Stale package lists name a version the mirror no longer has.
	[ "$(id -u)" -eq 0 ] || exit 1
	apt-get update -qq >&2
	pkg=$(apt-cache depends linux-image-amd64 |
	    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	(cd "$tmp" && apt-get download -q "${aptopt[@]}" "$pkg" >&2)
fi
dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"

# Module name (dashes read as underscores, as the kernel does) to file.
declare -A file seen
while IFS= read -r f; do
	n=${f##*/}
	n=${n%.ko}
	file[${n//-/_}]=$f
done < <(find "$tmp/x" -path '*/modules/*' -name '*.ko')
order=()

# Append module $1 to order after the modules it depends on (its modinfo).
add() {
	local m=$1 deps d
	[ -z "${seen[$m]:-}" ] || return 0
	seen[$m]=1
	if [ -z "${file[$m]:-}" ]; then
		echo "fetch.sh: $pkg has no module $m (built in, or compressed?)" >&2
		exit 1
	fi
	deps=$(tr '\0' '\n' < "${file[$m]}" | sed -n 's/^depends=//p' | head -n 1)
	for d in ${deps//,/ }; do
		add "$d"
	done
	order+=("$m")
}
for m in "${want[@]}"; do
	add "$m"
done

rm -rf "$kdir.new"
mkdir -p "$kdir.new/modules"
cp "$tmp"/x/boot/vmlinuz-* "$kdir.new/vmlinuz"
# The ELF image inside (xz), which qemu boots directly (PVH entry): under TCG
# this saves the bootloader's and the decompressor's 3 to 4 s at every boot.
# Without it run.sh boots vmlinuz.
for off in $(LC_ALL=C grep -obUa $'\xfd7zXZ' "$kdir.new/vmlinuz" | cut -d : -f 1); do
	# (Not a pipe: tail dies of SIGPIPE when xz stops at the stream's end.)
	if xz -dc --single-stream < <(tail -c +$((off + 1)) "$kdir.new/vmlinuz") \
	    > "$kdir.new/vmlinux" 2>/dev/null &&
	    [ "$(head -c 4 "$kdir.new/vmlinux")" = $'\x7fELF' ]; then
		break
	fi
	rm -f "$kdir.new/vmlinux"
done
for m in "${order[@]}"; do
	cp "${file[$m]}" "$kdir.new/modules/$m.ko"
done
printf '%s\n' "${order[@]}" > "$kdir.new/modules/order"
echo "$pkg" > "$kdir.new/package"
rm -rf "$kdir"
mv "$kdir.new" "$kdir"
echo "fetch.sh: $pkg in $kdir" >&2
