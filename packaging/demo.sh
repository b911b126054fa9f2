#!/usr/bin/env bash
# demo.sh PLUGIN
#
# Shows the installed plugin at work in the local Docker: a dualstack bridge
# network with two IPv6 subnets (unique local) and a default IPv4 pool, three
# containers with an address in every subnet, in sequence, pinging each
# other; then everything is removed again.
# Needs an image with `ip` (busybox); DEMO_IMAGE overrides the default, which
# is imported from Debian's busybox-static when missing.
set -euo pipefail
plugin=${1:-dualstack:latest}
image=${DEMO_IMAGE:-dualstack-busybox:latest}
net=dualstack-demo

if ! docker image inspect "$image" >/dev/null 2>&1; then
	bb=$(command -v busybox) || { echo "demo: no $image and no busybox to build it from (apt-get install busybox-static)" >&2; exit 1; }
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	mkdir -p "$root/bin" "$root/etc" "$root/tmp"
	cp "$bb" "$root/bin/busybox"
	for a in $("$bb" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
	tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
fi

cleanup() {
	docker rm -f dualstack-demo-1 dualstack-demo-2 dualstack-demo-3 >/dev/null 2>&1 || true
	docker network rm "$net" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

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
