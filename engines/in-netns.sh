#!/bin/sh
# in-netns.sh NETNS COMMAND [ARG...]
# in-netns.sh --delete NETNS
#
# Runs COMMAND (a dockerd, or a containerd) inside the named network
# namespace NETNS and a mount namespace that belongs to it, creating both
# on first use. Test engines run this way so that their bridges, addresses
# and firewall rules never touch the host's own network.
#
# The mount namespace is kept (bound to /run/dualstack-mnt/NETNS) so that a
# restarted dockerd finds the container network namespaces the previous one
# mounted, as it would on a host. It is prepared once:
#   - /sys is mounted again, so that it shows NETNS's interfaces, and the
#     cgroup mounts below it are mounted again with the host's options;
#   - DUALSTACK_ROOT (read when the namespace is made) says how mounts
#     propagate in it, for the two kinds of hosts there are:
#       private (the default): nothing propagates, as on a host without
#         systemd (Alpine/OpenRC, Docker-in-Docker, many minimal VMs and
#         this project's build machine): netns files dockerd creates after
#         a managed plugin started never show up in the plugin's own mount
#         namespace through its bind mounts;
#       shared: mounts are shared and /run is a shared mount point, as on a
#         systemd host, so they do.
# --delete removes both namespaces (stop what runs in them first).
set -eu
mntdir=/run/dualstack-mnt

if [ "$1" = --delete ]; then
	ns=$2
	umount "$mntdir/$ns" 2>/dev/null || true
	rm -f "$mntdir/$ns"
	ip netns del "$ns" 2>/dev/null || true
	# The last one out removes the private mount that held the files.
	if [ -z "$(ls -A "$mntdir" 2>/dev/null)" ]; then
		umount "$mntdir" 2>/dev/null || true
		rmdir "$mntdir" 2>/dev/null || true
	fi
	exit 0
fi

ns=$1
shift
if ! ip netns list | grep -qw "^$ns"; then
	ip netns add "$ns"
fi
ip -n "$ns" link set lo up

if ! nsenter --mount="$mntdir/$ns" true 2>/dev/null; then
	# A mount namespace is kept by binding its nsfs file, which needs a
	# private mount above the file.
	mkdir -p "$mntdir"
	if ! awk -v d="$mntdir" '$2 == d { found = 1 } END { exit !found }' /proc/mounts; then
		mount --bind "$mntdir" "$mntdir"
	fi
	mount --make-private "$mntdir"
	touch "$mntdir/$ns"
	# The host's cgroup mounts: "source mountpoint type options", one a line.
	cgroups=$(awk '$2 ~ "^/sys/fs/cgroup" { print $1, $2, $3, $4 }' /proc/mounts)
	root=${DUALSTACK_ROOT:-private}
	case $root in
	private | shared) ;;
	*) echo "in-netns.sh: DUALSTACK_ROOT=$root: want private or shared" >&2; exit 1 ;;
	esac
	nsenter --net="/run/netns/$ns" unshare --mount="$mntdir/$ns" --propagation private /bin/sh -eu -c '
		mount -t sysfs sysfs /sys
		echo "$1" | while read -r src dir type opts; do
			[ -n "$dir" ] || continue
			mkdir -p "$dir"
			mount -t "$type" -o "$opts" "$src" "$dir"
		done
		[ "$2" = shared ] || exit 0
		mount --make-rshared /
		# /run is a shared mount point on a systemd host, and the plugin
		# relies on it (runc lets new mounts propagate only into a bind of
		# a shared mount point). Make it one here too.
		if ! awk '"'"'$2 == "/run" { found = 1 } END { exit !found }'"'"' /proc/self/mounts; then
			mount --rbind /run /run
			mount --make-rshared /run
		fi
	' in-netns "$cgroups" "$root"
fi

exec nsenter --net="/run/netns/$ns" --mount="$mntdir/$ns" --wd=/ "$@"
