#!/bin/sh
# private.sh start DIR
# private.sh stop DIR
#
# start: runs Debian's dockerd (Engine 20.10, package docker.io) as a
# private engine, in a network and mount namespace of its own (in-netns.sh),
# with its data-root, socket, pidfile and log in DIR and its exec-root in
# /run/dualstack-private-<name of DIR>, so that nothing it does (bridges,
# addresses, firewall rules, container namespaces) touches the host's own
# network. It prints the engine's DOCKER_HOST once the engine answers.
#
# stop: stops that engine and removes everything it left: its processes
# (containerd and the shims of its containers and plugins too), its
# namespaces, its exec-root and DIR.
#
# Needs root, iproute2 and util-linux (ip, nsenter, unshare).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# = 2 ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
cmd=$1
dir=$2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
name=$(basename "$dir")
ns=dsprv-$(printf '%s' "$name" | cksum | cut -d' ' -f1)
execroot=/run/dualstack-private-$name
sock=$dir/docker.sock

case $cmd in
start)
	command -v dockerd >/dev/null || { echo "$0: no dockerd: apt-get install docker.io" >&2; exit 1; }
	"$here/in-netns.sh" "$ns" dockerd --data-root "$dir/data" --exec-root "$execroot" \
		--pidfile "$dir/docker.pid" -H "unix://$sock" >"$dir/dockerd.log" 2>&1 &
	i=0
	until docker -H "unix://$sock" info >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 $! 2>/dev/null; then
			echo "$0: the private engine did not answer within 60 s; its log:" >&2
			tail -n 30 "$dir/dockerd.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	echo "unix://$sock"
	;;
stop)
	if [ -f "$dir/docker.pid" ]; then
		pid=$(cat "$dir/docker.pid")
		kill -TERM "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	fi
	# containerd, the shims and what they run live in the namespace.
	if ip netns list | grep -qw "^$ns"; then
		i=0
		while pids=$(ip netns pids "$ns") && [ -n "$pids" ] && [ $i -lt 50 ]; do
			kill -KILL $pids 2>/dev/null || true
			sleep 0.1
			i=$((i + 1))
		done
	fi
	"$here/in-netns.sh" --delete "$ns"
	# Mounts below these were the private mount namespace's own: gone
	# with it. Whatever the host holds there is detached first.
	for d in "$dir" "$execroot"; do
		awk -v d="$d/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
			umount -l "$m" 2>/dev/null || true
		done
		rm -rf "$d"
	done
	;;
*)
	echo "usage: $0 start|stop DIR" >&2
	exit 2
	;;
esac
