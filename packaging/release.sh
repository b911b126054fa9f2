#!/usr/bin/env bash
# release.sh VERSION REGISTRY
#
# Builds the dualstack plugin for each architecture of ARCHES (default:
# amd64 arm64) and pushes it as REGISTRY/dualstack:VERSION-ARCH (REGISTRY
# is HOST[:PORT][/NAMESPACE], such as registry.example.com/net or
# 127.0.0.1:5000). One tag per architecture because `docker plugin install`
# cannot pull a plugin through a manifest list (moby#34043): users pick
# theirs, e.g. REGISTRY/dualstack:VERSION-$(dpkg --print-architecture).
#
# For each ARCH, into build/release/VERSION/:
#   dualstack-linux-ARCH  the static binary (CGO_ENABLED=0, -trimpath), its
#                         version set to VERSION; checked by running
#                         `dualstack version` (through qemu-user-static for
#                         another architecture than this machine's);
#   ARCH/                 the plugin: config.json and rootfs/
#                         (packaging/mkrootfs.sh with ARCH). A rootfs made
#                         by an earlier run from the same binary, the same
#                         mkrootfs.sh and the same IPTABLES_DEFAULT and
#                         EXTRA_PACKAGES is kept (a reproducible build
#                         gives the same binary for the same VERSION);
# then `docker plugin create`, `docker plugin push` and `docker plugin rm`
# in the Docker engine the docker CLI talks to (DOCKER_HOST), which must
# be able to reach REGISTRY (and be logged in to it: docker login). A
# plugin that engine already has under one of the names is left alone, and
# nothing is built or pushed.
#
# Needs root (mkrootfs.sh), Go, the docker CLI; for arm64 on amd64 (or the
# other way round) Debian's qemu-user-static.
set -euo pipefail

prog=${0##*/}
die() {
	echo "$prog: error: $*" >&2
	exit 1
}
log() { echo "$prog: $*" >&2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
GO=${GO:-go}
read -r -a arches <<<"${ARCHES:-amd64 arm64}"
module=github.com/dualstack-net/dualstack

[ $# -eq 2 ] || die "usage: $prog VERSION REGISTRY (make release VERSION=1.2.3 REGISTRY=registry.example.com/net)"
version=$1
registry=$2
[ -n "$version" ] || die "VERSION is empty: say which release this is, e.g. make release VERSION=1.2.3 REGISTRY=..."
[ -n "$registry" ] || die "REGISTRY is empty: say where to push, HOST[:PORT][/NAMESPACE], e.g. make release VERSION=$version REGISTRY=registry.example.com/net"
# A Docker tag: letters, digits, '_', '.', '-', not starting with '.' or
# '-', at most 128 characters, of which "-arm64" takes 6.
[[ $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,121}$ ]] ||
	die "VERSION=$version cannot be a Docker tag: use letters, digits, '_', '.' and '-' (not first), at most 122 characters"
[[ $registry != *://* ]] || die "REGISTRY=$registry: give HOST[:PORT][/NAMESPACE] without a scheme"
[[ $registry =~ ^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$ ]] ||
	die "REGISTRY=$registry is not HOST[:PORT][/NAMESPACE] (lower-case namespace, no tag, no trailing '/')"
((${#arches[@]})) || die "ARCHES is empty: want some of amd64 arm64"
for arch in "${arches[@]}"; do
	case $arch in
	amd64 | arm64) ;;
	*) die "ARCHES: $arch is not supported (only amd64 and arm64)" ;;
	esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root: packaging/mkrootfs.sh checks the rootfs in a chroot"
command -v docker >/dev/null || die "docker CLI not found"
docker version >/dev/null 2>&1 ||
	die "cannot reach the Docker daemon at ${DOCKER_HOST:-the default socket}: $(docker version 2>&1 | tail -n 1)"
for arch in "${arches[@]}"; do
	ref=$registry/dualstack:$version-$arch
	if docker plugin inspect "$ref" >/dev/null 2>&1; then
		die "the engine at ${DOCKER_HOST:-the default socket} already has a plugin named $ref: remove it first (docker plugin rm $ref) or release another VERSION"
	fi
done

native=$(dpkg --print-architecture)
out=$repo/build/release/$version
mkdir -p "$out"

# build ARCH builds the binary and checks what `dualstack version` says.
build() {
	local arch=$1 bin=$out/dualstack-linux-$1 emu=() got want
	log "building $bin"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath \
		-ldflags "-s -w -X $module/internal/version.Version=$version" -o "$bin" ./cmd/dualstack
	if [ "$arch" != "$native" ]; then
		case $arch in
		amd64) emu=(qemu-x86_64-static) ;;
		arm64) emu=(qemu-aarch64-static) ;;
		esac
		command -v "${emu[0]}" >/dev/null ||
			die "${emu[0]} not found: checking the $arch binary on $native needs qemu-user-static (apt-get install qemu-user-static)"
	fi
	want="dualstack $version linux/$arch"
	got=$("${emu[@]}" "$bin" version 2>&1) || die "'${emu[*]} $bin version' failed: $got"
	[ "$got" = "$want" ] || die "$bin version says '$got', want '$want'"
}

# plugin ARCH makes the plugin directory build/release/VERSION/ARCH.
plugin() {
	local arch=$1 dir=$out/$1 stamp=$out/.$1.rootfs key
	key=$( {
		sha256sum "$out/dualstack-linux-$arch" packaging/mkrootfs.sh | cut -d' ' -f1
		echo "IPTABLES_DEFAULT=${IPTABLES_DEFAULT:-} EXTRA_PACKAGES=${EXTRA_PACKAGES:-}"
	} | sha256sum | cut -d' ' -f1)
	if [ -d "$dir/rootfs" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
		log "keeping $dir/rootfs: made from the same binary and mkrootfs.sh"
	else
		rm -f "$stamp"
		ARCH=$arch DEBS_DIR=${DEBS_DIR:-$repo/build/debs} packaging/mkrootfs.sh "$dir/rootfs" "$out/dualstack-linux-$arch"
		echo "$key" >"$stamp"
	fi
	cp config.json "$dir/config.json"
}

# push ARCH creates the plugin in the engine, pushes it, and removes it.
push() {
	local ref=$registry/dualstack:$version-$1 err
	log "creating and pushing $ref"
	docker plugin create "$ref" "$out/$1" >/dev/null
	if ! err=$(docker plugin push "$ref" 2>&1); then
		docker plugin rm -f "$ref" >/dev/null || true
		die "docker plugin push $ref failed (is the registry reachable from the engine, are you logged in?): $err"
	fi
	docker plugin rm "$ref" >/dev/null
}

for arch in "${arches[@]}"; do
	build "$arch"
	plugin "$arch"
done
for arch in "${arches[@]}"; do
	push "$arch"
done
log "pushed:$(printf ' %s' "${arches[@]/#/$registry/dualstack:$version-}")"
log "install: docker plugin install --alias dualstack --grant-all-permissions $registry/dualstack:$version-\$(dpkg --print-architecture)"
