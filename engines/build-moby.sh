#!/bin/sh
# build-moby.sh: builds the current Moby engine the suite can run against
# (DUALSTACK_ENGINE=moby) with `go install` through the Go module proxy:
#   dockerd  github.com/moby/moby/v2/cmd/dockerd   (API 1.56), and its
#            docker-proxy (for ports published on its own bridge)
#   runc     github.com/opencontainers/runc        (no seccomp: the harness runs
#            dockerd with --seccomp-profile=unconfined)
#   docker-compose (CLI plugin), unless DUALSTACK_SKIP_COMPOSE=1
# into $DUALSTACK_ENGINE_CACHE (default ~/.cache/dualstack-engines)/moby-$MOBY/bin.
# A binary already there is not built again, so a second run costs nothing.
# containerd is Debian's (package containerd); the docker CLI is the one in
# PATH (it negotiates the API version down).
set -eu

MOBY=${MOBY_VERSION:-v2.0.0-beta.24}
RUNC=${RUNC_VERSION:-v1.5.2}
COMPOSE=${COMPOSE_VERSION:-v5.0.2}
GO=${GO:-go}
cache=${DUALSTACK_ENGINE_CACHE:-$HOME/.cache/dualstack-engines}
bin=$cache/moby-$MOBY/bin
mkdir -p "$bin" "$bin/cli-plugins"

# A go install fetches modules through the proxy; a network that drops a
# connection now and then ("connection reset by peer") must not fail the
# build: each go install is tried up to $tries times, $pause seconds apart
# (a longer pause each time). What a try downloaded stays in the module
# cache, so a retry fetches only what is missing.
tries=${BUILD_MOBY_TRIES:-3}
pause=${BUILD_MOBY_PAUSE:-10}

# goinstall PKG [ENV...]: go install PKG into $tmp with ENV, retried.
goinstall() {
	pkg=$1
	shift
	try=1
	while :; do
		if env GOBIN="$tmp" "$@" "$GO" install -trimpath "$pkg"; then
			return 0
		fi
		if [ "$try" -ge "$tries" ]; then
			echo "build-moby: go install $pkg failed $try times" >&2
			return 1
		fi
		echo "build-moby: go install $pkg failed (try $try of $tries); trying again in $((pause * try))s" >&2
		sleep $((pause * try))
		try=$((try + 1))
	done
}

# build NAME MODULE-PATH@VERSION [ENV...]: go install into $bin, then rename
# the result (go install names it after the package directory) to NAME.
build() {
	name=$1 pkg=$2
	shift 2
	if [ -x "$bin/$name" ]; then
		echo "build-moby: $bin/$name already built"
		return 0
	fi
	tmp=$(mktemp -d "$bin/.build.XXXXXX")
	echo "build-moby: go install $pkg -> $bin/$name"
	start=$(date +%s)
	if ! goinstall "$pkg" "$@"; then
		rm -rf "$tmp"
		echo "build-moby: building $name failed" >&2
		return 1
	fi
	out=$(ls "$tmp")
	mv "$tmp/$out" "$bin/$name"
	rmdir "$tmp"
	echo "build-moby: built $bin/$name in $(( $(date +%s) - start ))s"
}

# runc needs cgo (its nsenter is C); without the "seccomp" build tag it
# needs no libseccomp headers.
build runc "github.com/opencontainers/runc@$RUNC" CGO_ENABLED=1
build dockerd "github.com/moby/moby/v2/cmd/dockerd@$MOBY" CGO_ENABLED=0
# The userland proxy dockerd starts for ports its own bridge publishes.
build docker-proxy "github.com/moby/moby/v2/cmd/docker-proxy@$MOBY" CGO_ENABLED=0
if [ "${DUALSTACK_SKIP_COMPOSE:-}" != 1 ]; then
	# compose v5 asks for a newer Go than some machines have: GOTOOLCHAIN=auto.
	build cli-plugins/docker-compose "github.com/docker/compose/v5/cmd@$COMPOSE" GOTOOLCHAIN=auto CGO_ENABLED=0
fi

# go install leaves the binaries' own version strings unset
# ("library-import", "dev"): their module versions say what they are.
modversion() { "$GO" version -m "$1" | awk '$1 == "mod" { print $2, $3 }'; }
echo "build-moby: engine binaries in $bin:"
echo "  dockerd: $(modversion "$bin/dockerd")"
echo "  docker-proxy: $(modversion "$bin/docker-proxy")"
echo "  runc: $("$bin/runc" --version | head -1) (no seccomp)"
if [ -x "$bin/cli-plugins/docker-compose" ]; then
	echo "  docker-compose: $(modversion "$bin/cli-plugins/docker-compose") (CLI plugin: DOCKER_CONFIG with cli-plugins -> $bin/cli-plugins)"
fi
echo "build-moby: containerd: $(containerd --version 2>/dev/null || echo 'not installed (apt-get install containerd)')"
echo "build-moby: docker CLI: $(command -v docker) $(docker --version 2>/dev/null)"
