#!/usr/bin/env bash
# install.sh NAME PLUGIN_DIR [SETTING...]
#
# Creates the managed plugin NAME (e.g. dualstack:latest) in the Docker engine
# the docker CLI talks to (DOCKER_HOST is honoured) from PLUGIN_DIR (holding
# config.json and rootfs/, as `make plugin` leaves them), applies the
# settings (`docker plugin set` arguments such as state.source=/srv/ds or
# LOG_LEVEL=debug) and enables it. Docker does not create missing bind-mount
# sources, so when the daemon is local the directories the plugin mounts
# (state and netns, as set) are created first if missing.
#
# A plugin already installed under NAME is disabled and removed first, unless
# a network uses it (as network driver or IPAM driver): then nothing is
# changed and the networks are listed, to be removed first.
set -euo pipefail

prog=${0##*/}
die() {
	echo "$prog: error: $*" >&2
	exit 1
}
log() { echo "$prog: $*" >&2; }

[ $# -ge 2 ] || die "usage: $prog NAME PLUGIN_DIR [SETTING...]"
name=$1
dir=$2
shift 2
settings=("$@")

[ -f "$dir/config.json" ] && [ -d "$dir/rootfs" ] ||
	die "$dir does not hold config.json and rootfs/ (run 'make plugin' first)"
command -v docker >/dev/null || die "docker CLI not found"
docker version >/dev/null 2>&1 ||
	die "cannot reach the Docker daemon at ${DOCKER_HOST:-the default socket}: $(docker version 2>&1 | tail -n 1)"

# canonical REF prints a plugin reference the way Docker names plugins:
# default registry and library/ namespace dropped, :latest added if untagged.
canonical() {
	local r=${1#docker.io/}
	r=${r#library/}
	case ${r##*/} in
	*:* | *@*) ;;
	*) r=$r:latest ;;
	esac
	echo "$r"
}
want=$(canonical "$name")

if docker plugin inspect "$name" >/dev/null 2>&1; then
	users=()
	ids=$(docker network ls -q)
	if [ -n "$ids" ]; then
		while IFS='|' read -r net driver ipam; do
			[ -n "$net" ] || continue
			for d in "$driver" "$ipam"; do
				if [ -n "$d" ] && [ "$(canonical "$d")" = "$want" ]; then
					users+=("$net")
					break
				fi
			done
		done < <(docker network inspect -f '{{.Name}}|{{.Driver}}|{{.IPAM.Driver}}' $ids)
	fi
	if ((${#users[@]})); then
		die "plugin $name is in use by network(s): ${users[*]}
remove them first (docker network rm ${users[*]}), then run this again"
	fi
	if [ "$(docker plugin inspect -f '{{.Enabled}}' "$name")" = true ]; then
		log "disabling the installed $name"
		docker plugin disable -f "$name" >/dev/null
	fi
	log "removing the installed $name"
	docker plugin rm -f "$name" >/dev/null
fi

log "creating $name from $dir"
docker plugin create "$name" "$dir" >/dev/null
if ((${#settings[@]})); then
	log "setting ${settings[*]}"
	docker plugin set "$name" "${settings[@]}" ||
		die "docker plugin set $name ${settings[*]} failed (plugin $name left installed, disabled)"
fi
# Docker does not create missing bind-mount sources: enabling fails with
# "error mounting ... no such file or directory". Create the directories the
# plugin mounts (its state directory, and Docker's netns directory, which
# dockerd itself only makes when it creates its first network namespace) if
# the daemon runs on this machine.
case ${DOCKER_HOST:-unix://} in
unix://*)
	while read -r mnt src dst; do
		if [ -n "$src" ] && [ -d "$dir/rootfs$dst" ] && [ ! -e "$src" ]; then
			log "creating the source of mount $mnt: $src"
			mkdir -p "$src"
		fi
	done < <(docker plugin inspect -f '{{range .Settings.Mounts}}{{.Name}} {{.Source}} {{.Destination}}{{"\n"}}{{end}}' "$name")
	;;
*) log "the Docker daemon is not local: make sure the plugin's mount sources exist on its machine" ;;
esac
log "enabling $name"
docker plugin enable "$name" >/dev/null ||
	die "docker plugin enable $name failed (plugin left installed, disabled); see the daemon's log for the plugin's output"
docker plugin ls --filter "enabled=true" | grep -F -- "$want" >&2 || true
