#!/usr/bin/env bash
# demo.sh PLUGIN PLUGIN_DIR [SETTING...]
#
# Shows the plugin at work: installs it from PLUGIN_DIR (install.sh, with
# the settings), makes a dualstack bridge network with two IPv6 subnets
# (unique local) and a default IPv4 pool, starts three containers that get
# an address in every subnet, in sequence, and has them ping each other;
# then removes everything again.
#
# It uses the Docker daemon the docker CLI reaches (DOCKER_HOST included).
# When none answers, it starts a private one as the tests do: Debian's
# docker.io (installed if missing), in network and mount namespaces of its
# own (engines/private.sh), and removes it at the end, leaving no engine
# process, link, rule or namespace behind.
#
# The image is DEMO_IMAGE, or one imported from Debian's busybox-static
# (installed if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
plugin=${1:-dualstack:latest}
plugin_dir=${2:-build/plugin}
shift 2 || true
settings=("$@")
image=${DEMO_IMAGE:-dualstack-busybox:latest}
net=dualstack-demo
say() { echo "demo: $*" >&2; }

# need CMD PACKAGE: install PACKAGE with apt-get when CMD is missing.
need() {
	command -v "$1" >/dev/null && return 0
	command -v apt-get >/dev/null || { say "no $1, and no apt-get to install $2 with"; exit 1; }
	say "installing $2 (for $1)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 || {
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
	}
}

private=
cleanup() {
	set +ex
	docker rm -f dualstack-demo-1 dualstack-demo-2 dualstack-demo-3 >/dev/null 2>&1
	docker network rm "$net" >/dev/null 2>&1
	if [ -n "$private" ]; then
		docker plugin disable -f "$plugin" >/dev/null 2>&1
		docker plugin rm -f "$plugin" >/dev/null 2>&1
		say "removing the private engine"
		"$here/engines/private.sh" stop "$private"
	fi
}
trap cleanup EXIT

need docker docker.io
if ! docker version >/dev/null 2>&1; then
	say "no Docker daemon answers at ${DOCKER_HOST:-the default socket}: starting a private one (Debian's docker.io) in namespaces of its own"
	need dockerd docker.io
	need ip iproute2
	need nsenter util-linux
	private=$(mktemp -d /tmp/dualstack-demo.XXXXXX)
	DOCKER_HOST=$("$here/engines/private.sh" start "$private")
	export DOCKER_HOST
	settings+=("state.source=$private/plugin-state")
	mkdir -p "$private/plugin-state"
fi
"$here/packaging/install.sh" "$plugin" "$plugin_dir" "${settings[@]}"

if ! docker image inspect "$image" >/dev/null 2>&1; then
	need busybox busybox-static
	root=$(mktemp -d)
	mkdir -p "$root/bin" "$root/etc" "$root/tmp"
	cp "$(command -v busybox)" "$root/bin/busybox"
	for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
	tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
	rm -rf "$root"
fi
docker rm -f dualstack-demo-1 dualstack-demo-2 dualstack-demo-3 >/dev/null 2>&1 || true
docker network rm "$net" >/dev/null 2>&1 || true

set -x
docker network create -d "$plugin" --ipam-driver "$plugin" --ipv6 \
	--subnet fd00:d5:1::/64 --subnet fd00:d5:2::/64 "$net"
docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' "$net"
for i in 1 2 3; do
	docker run -d --name dualstack-demo-$i --network "$net" "$image" sleep 300 >/dev/null
	docker exec dualstack-demo-$i ip -o addr show dev eth0 scope global
done
docker exec dualstack-demo-1 ping -c 1 fd00:d5:1::4
docker exec dualstack-demo-1 ping -c 1 fd00:d5:2::4
