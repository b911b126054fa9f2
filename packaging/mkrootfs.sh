#!/usr/bin/env bash
# mkrootfs.sh ROOTFS BINARY
#
# Builds the rootfs of the dualstack managed plugin into the directory ROOTFS
# (emptied first) around the static binary BINARY, installed as /dualstack.
#
# Besides the binary, the rootfs holds:
#   - the mount points config.json declares. Docker Lstat()s each bind-mount
#     destination inside the rootfs before it starts the plugin, so they must
#     exist with the right type: the directories /var/lib/dualstack and
#     /host/run (the host's /run, where container network namespaces live)
#     and the empty regular file /etc/machine-id;
#   - /tmp, /run and minimal /etc/{passwd,group,nsswitch.conf}, plus netbase's
#     /etc/{protocols,services,ethertypes} (iptables resolves protocol and
#     service names through them);
#   - iptables and ip6tables in both flavours (iptables-nft, iptables-legacy,
#     their -save/-restore tools; the plain iptables/ip6tables names point at
#     the nft flavour, or at IPTABLES_DEFAULT=legacy), the xtables extension
#     modules, and every shared library they need with the dynamic loader.
#     The plugin needs CAP_NET_RAW besides CAP_NET_ADMIN for the legacy
#     flavour: libiptc talks to the kernel through get/setsockopt on a
#     SOCK_RAW socket, which cannot be opened without it (the nft flavour only
#     uses netlink, for which CAP_NET_ADMIN is enough).
#
# The iptables files come from Debian's own packages, fetched with
# `apt-get download` (the packages need not be installed on this machine) into
# the cache directory DEBS_DIR (default: build/debs next to this script's
# repository; reused when it already holds them), unpacked with `dpkg-deb -x`
# into a scratch directory, and only the files needed are copied into ROOTFS:
# no documentation, man pages, locales or gconv modules. The libraries are
# those the dynamic loader itself reports (`ld.so --list`, run in a chroot of
# the unpacked packages), so nothing leaks in from the build machine.
# Finally each tool is run in a chroot of ROOTFS to check it works.
#
# ARCH (amd64 or arm64; default: this machine's, dpkg --print-architecture)
# is the architecture of the rootfs; BINARY must be built for it. For
# another architecture than this machine's, the packages are downloaded
# with apt-get pointed at a private copy of the package lists of ARCH (in a
# scratch directory below DEBS_DIR, removed afterwards: the machine's apt
# configuration and lists are left as they are), and the loader and the
# tools run in the chroots through Debian's static user-mode emulator
# (qemu-user-static: qemu-aarch64-static or qemu-x86_64-static), copied into
# the chroot for the checks and removed afterwards; binfmt_misc need not be
# set up. The emulator does not translate everything the kernel offers:
# netfilter netlink sockets (the nft flavour) and the legacy flavour's
# IPv6 revision queries fail under it, so for another architecture the
# extension modules are checked with iptables-legacy (comment, conntrack,
# REJECT) and ip6tables-legacy (comment, REJECT) only, and iptables-nft and
# ip6tables-nft (which open netlink before they read --version) only need
# to start; the other tools' --version is checked as on this machine's.
#
# Needs root (chroot), dpkg-deb and apt-get: a Debian (12) machine.
set -euo pipefail

# Debian packages that hold the iptables tools, their libraries and files.
PACKAGES=(iptables libxtables12 libip4tc2 libip6tc2 libnftnl11 libmnl0
	libnetfilter-conntrack3 libnfnetlink0 libc6 netbase)
# More packages, for when the loader reports a library as "not found".
read -r -a EXTRA <<<"${EXTRA_PACKAGES:-}"
PACKAGES+=("${EXTRA[@]}")

prog=${0##*/}
die() {
	echo "$prog: error: $*" >&2
	exit 1
}
log() { echo "$prog: $*" >&2; }

[ $# -eq 2 ] || die "usage: $prog ROOTFS BINARY"
rootfs=$1
binary=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
debs=${DEBS_DIR:-$repo/build/debs}
[[ $debs == /* ]] || debs=$PWD/$debs
default_flavour=${IPTABLES_DEFAULT:-nft}

case $default_flavour in
nft | legacy) ;;
*) die "IPTABLES_DEFAULT=$default_flavour: want nft or legacy" ;;
esac
[ "$(id -u)" -eq 0 ] || die "must run as root: it checks the iptables tools by running them in a chroot"
for cmd in apt-get dpkg dpkg-deb chroot; do
	command -v "$cmd" >/dev/null || die "$cmd not found: this script needs a Debian machine"
done
[ -f "$binary" ] || die "binary $binary not found (run 'make build' first)"
[ -x "$binary" ] || die "binary $binary is not executable"
if command -v readelf >/dev/null && readelf -l "$binary" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$binary is dynamically linked; build it with CGO_ENABLED=0"
fi
[ -n "$rootfs" ] && [ "$(realpath -m "$rootfs")" != / ] || die "refusing to use '$rootfs' as ROOTFS"
[ ! -e "$rootfs" ] || [ -d "$rootfs" ] || die "ROOTFS $rootfs exists and is not a directory"

native=$(dpkg --print-architecture)
arch=${ARCH:-$native}
case $arch in
amd64)
	triplet=x86_64-linux-gnu
	loader=/lib64/ld-linux-x86-64.so.2
	qemu="qemu-x86_64-static"
	machine=62 # ELF e_machine EM_X86_64
	;;
arm64)
	triplet=aarch64-linux-gnu
	loader=/lib/ld-linux-aarch64.so.1
	qemu="qemu-aarch64-static"
	machine=183 # EM_AARCH64
	;;
*) die "ARCH=$arch is not supported (only amd64 and arm64)" ;;
esac
# ELF header: e_machine, two bytes at offset 18 (little endian on both).
[ "$(od -An -t u2 -j 18 -N 2 "$binary" | tr -d ' ')" = "$machine" ] ||
	die "$binary is not a linux/$arch binary (build it with GOARCH=$arch)"
# emu is what runs ARCH's programs in a chroot: nothing when ARCH is this
# machine's, else the static emulator, copied into the chroot (as
# /.dualstack-qemu, removed by the end) because binfmt_misc may not be set up.
emu=()
if [ "$arch" != "$native" ]; then
	command -v "$qemu" >/dev/null ||
		die "$qemu not found: building a $arch rootfs on $native needs qemu-user-static (apt-get install qemu-user-static)"
	emu=(/.dualstack-qemu)
fi

# in_root DIR CMD... runs CMD (a path inside DIR) in a chroot of DIR.
in_root() {
	local dir=$1
	shift
	if ((${#emu[@]})) && [ ! -e "$dir${emu[0]}" ]; then
		install -m 0755 "$(command -v "$qemu")" "$dir${emu[0]}"
	fi
	chroot "$dir" "${emu[@]}" "$@"
}

# deb_for PACKAGE prints the newest cached .deb of PACKAGE, if any.
deb_for() {
	local f
	f=$(ls -1 "$debs/$1"_*_"$arch".deb "$debs/$1"_*_all.deb 2>/dev/null | sort -V | tail -n 1)
	[ -n "$f" ] && echo "$f"
}

# fetch_debs downloads the packages missing from the cache.
fetch_debs() {
	local missing=() p dl
	for p in "${PACKAGES[@]}"; do
		deb_for "$p" >/dev/null || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	mkdir -p "$debs"
	dl=$(mktemp -d "$debs/.download.XXXXXX")
	# apt downloads as the _apt user when it can write the directory (and
	# warns about an "unsandboxed" download when it cannot).
	if id _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
	log "downloading ${missing[*]} ($arch) into $debs"
	if [ "$arch" != "$native" ]; then
		fetch_foreign "$dl" "${missing[@]}"
	elif ! (cd "$dl" && apt-get download -q "${missing[@]}"); then
		log "apt-get download failed; updating the package lists and trying again"
		apt-get update -q || { rm -rf "$dl"; die "apt-get update failed"; }
		(cd "$dl" && apt-get download -q "${missing[@]}") || {
			rm -rf "$dl"
			die "cannot download ${missing[*]} with apt-get download"
		}
	fi
	mv "$dl"/*.deb "$debs"/
	rm -rf "$dl"
	for p in "${missing[@]}"; do
		deb_for "$p" >/dev/null || die "apt-get download did not leave a .deb for $p in $debs"
	done
}

# fetch_foreign DIR PACKAGE... downloads ARCH's PACKAGEs into DIR through a
# private apt state in DIR/.apt: the machine's sources, ARCH's package lists
# fetched anew (apt-get update), an empty dpkg status; the machine's lists,
# cache and architectures are not touched.
fetch_foreign() {
	local dir=$1 st
	shift
	st=$dir/.apt
	mkdir -p "$st/lists/partial" "$st/cache/archives/partial"
	: >"$st/status"
	local opts=(-q -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
		-o "Dir::State::Lists=$st/lists" -o "Dir::Cache=$st/cache" -o "Dir::State::status=$st/status"
		-o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false")
	apt-get "${opts[@]}" update >&2 || {
		rm -rf "$dir"
		die "apt-get update of the $arch package lists (into $st) failed"
	}
	(cd "$dir" && apt-get "${opts[@]}" download "$@") || {
		rm -rf "$dir"
		die "cannot download the $arch packages $* with apt-get download"
	}
}

stage=$(mktemp -d "${TMPDIR:-/tmp}/dualstack-debs.XXXXXX")
trap 'rm -rf "$stage"; [ -z "${rootfs:-}" ] || [ ! -d "$rootfs" ] || ((!${#emu[@]})) || rm -f "$rootfs${emu[0]}"' EXIT

fetch_debs
for p in "${PACKAGES[@]}"; do
	deb=$(deb_for "$p")
	dpkg-deb -x "$deb" "$stage" || die "cannot unpack $deb (remove it from $debs to fetch it again)"
done
[ -x "$stage$loader" ] || die "dynamic loader $loader missing from the unpacked packages"

rm -rf "$rootfs"
mkdir -p "$rootfs"
rootfs=$(cd "$rootfs" && pwd)

# install_staged PATH copies PATH (absolute, inside the unpacked packages)
# into ROOTFS at the same place, following symlinks (each link is copied as
# well as its target, resolved inside the unpacked packages).
install_staged() {
	local p=$1 t n=0
	while :; do
		[ -e "$stage$p" ] || [ -L "$stage$p" ] || die "$p is not in the unpacked packages"
		(cd "$stage" && cp -a --parents ".$p" "$rootfs/")
		[ -L "$stage$p" ] || return 0
		t=$(readlink "$stage$p")
		case $t in
		/*) p=$t ;;
		*) p=$(dirname "$p")/$t ;;
		esac
		((++n < 16)) || die "too many levels of symlinks at $1"
	done
}

# iptables tools: the two multi-call binaries and the names they answer to.
tools=()
for fam in iptables ip6tables; do
	for flavour in nft legacy; do
		for suffix in "" -save -restore; do
			tools+=("$fam-$flavour$suffix")
		done
	done
done
for t in "${tools[@]}"; do
	install_staged "/usr/sbin/$t"
done
for fam in iptables ip6tables; do
	for suffix in "" -save -restore; do
		ln -s "$fam-$default_flavour$suffix" "$rootfs/usr/sbin/$fam$suffix"
	done
done

# The xtables extension modules, loaded by libxtables from this directory.
xtdir=/usr/lib/$triplet/xtables
[ -d "$stage$xtdir" ] || die "$xtdir is not in the iptables package"
mkdir -p "$rootfs$xtdir"
cp -a "$stage$xtdir"/*.so "$rootfs$xtdir"/

# Shared libraries: whatever the loader resolves for each ELF file, found in
# the unpacked packages only (they have no ld.so.cache, and the chroot hides
# the build machine's libraries).
elves=("$stage/usr/sbin/xtables-nft-multi" "$stage/usr/sbin/xtables-legacy-multi")
for f in "$stage$xtdir"/*.so; do
	[ -L "$f" ] || elves+=("$f")
done
declare -A libs=()
missing=()
for f in "${elves[@]}"; do
	out=$(in_root "$stage" "$loader" --list "${f#"$stage"}" 2>&1) || true
	while read -r name arrow path _; do
		if [ "$arrow" = "=>" ]; then
			case $path in
			/*) libs[$path]=1 ;;
			*) missing+=("$name (needed by ${f#"$stage"})") ;;
			esac
		elif [[ $name == /* ]]; then
			libs[$name]=1
		fi
	done <<<"$out"
	if ! grep -q "$loader" <<<"$out"; then
		# ld.so --list stops at the first library it cannot find.
		lib=$(sed -n 's/.*error while loading shared libraries: \([^:]*\):.*/\1/p' <<<"$out")
		[ -z "$lib" ] || missing+=("$lib (needed by ${f#"$stage"})")
		[ -n "$lib" ] || die "the loader cannot list the libraries of ${f#"$stage"}:"$'\n'"$out"
	fi
done
if ((${#missing[@]})); then
	die "libraries not found in the unpacked packages:$(printf '\n  %s' "${missing[@]}")
add the Debian packages that provide them with EXTRA_PACKAGES=\"...\" (or to PACKAGES in $0)"
fi
for l in "${!libs[@]}"; do
	install_staged "$l"
done

# Mount points, scratch directories and /etc.
mkdir -p "$rootfs"/{var/lib/dualstack,host/run,tmp,run/docker/plugins,etc,proc,sys,dev}
chmod 1777 "$rootfs/tmp"
: >"$rootfs/etc/machine-id"
chmod 0444 "$rootfs/etc/machine-id"
for f in protocols services ethertypes; do
	install_staged "/etc/$f"
done
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
passwd:    files
group:     files
shadow:    files
hosts:     files dns
networks:  files
protocols: files
services:  files
ethers:    files
rpc:       files
EOF

install -m 0755 "$binary" "$rootfs/dualstack"

# Check that every tool runs in the rootfs, with the expected flavour.
for t in "${tools[@]}" iptables ip6tables iptables-save iptables-restore ip6tables-save ip6tables-restore; do
	case $t in
	*-legacy*) want=legacy ;;
	*-nft*) want=nf_tables ;;
	*) want=${default_flavour/nft/nf_tables} ;;
	esac
	out=$(in_root "$rootfs" "/usr/sbin/$t" --version 2>&1) || {
		# The emulator has no netfilter netlink: iptables-nft and
		# ip6tables-nft open it before they read --version (the same
		# xtables-nft-multi answers it as -save and -restore).
		if ((${#emu[@]})) && [ "$want" = nf_tables ] && [[ $out == *"Failed to initialize nft: Protocol not supported"* ]]; then
			continue
		fi
		die "'chroot $rootfs ${emu[*]} /usr/sbin/$t --version' failed:"$'\n'"$out"
	}
	[[ $out == *"($want)"* ]] || die "/usr/sbin/$t --version says '$out', want a ($want) version"
done
# ...and that extension modules load (this parses rules, without the kernel).
# Under the emulator, only what it can run (see the top of this file).
checks=("iptables-legacy comment conntrack REJECT" "iptables-nft comment conntrack REJECT"
	"ip6tables-legacy comment conntrack REJECT" "ip6tables-nft comment conntrack REJECT")
if ((${#emu[@]})); then
	checks=("iptables-legacy comment conntrack REJECT" "ip6tables-legacy comment REJECT")
fi
for c in "${checks[@]}"; do
	read -r t exts <<<"$c"
	args=(-p tcp)
	for ext in $exts; do
		if [ "$ext" = REJECT ]; then args+=(-j "$ext"); else args+=(-m "$ext"); fi
	done
	out=$(in_root "$rootfs" "/usr/sbin/$t" "${args[@]}" --help 2>&1) ||
		die "'chroot $rootfs ${emu[*]} /usr/sbin/$t ${args[*]} --help' failed:"$'\n'"$out"
	for ext in $exts; do
		[[ $out == *"$ext"* ]] || die "/usr/sbin/$t did not load the $ext extension:"$'\n'"$out"
	done
done
# (Under the emulator iptables-save: iptables-nft needs netfilter netlink.)
vtool=/usr/sbin/iptables
((!${#emu[@]})) || vtool=/usr/sbin/iptables-save
version=$(in_root "$rootfs" "$vtool" --version)
((!${#emu[@]})) || rm -f "$rootfs${emu[0]}"

log "rootfs ($arch) ready in $rootfs ($(du -sh "$rootfs" | cut -f1); $version)"
