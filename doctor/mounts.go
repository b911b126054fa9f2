package doctor

import (
	"fmt"
	"strings"

	"github.com/dualstack-net/dualstack/driver/sandboxkey"
)

// rshared is the fix of a root mount that does not propagate.
const rshared = "mount --make-rshared / at boot, before dockerd starts (systemd does); " +
	"or keep NETNS_ACCESS=auto (the default), which works whatever the propagation"

// checkMountPropagation: the root mount in dockerd's mount namespace
// should be shared, as on systemd hosts. On a private or slave one the
// network namespaces dockerd mounts never show up in a managed plugin's
// mount namespace: dualstack copes (NETNS_ACCESS=auto takes proc), but
// only through dockerd's mount namespace.
func checkMountPropagation(h Host) []Finding {
	f := Finding{Check: CheckMountPropagation, Severity: SeverityWarning, Object: "/"}
	if h.MountinfoError != "" {
		f.Problem = "cannot read the mounts of dockerd's mount namespace: " + h.MountinfoError
		f.Fix = "see the root mount's propagation on the host with findmnt -o TARGET,PROPAGATION /; if it is not shared: " + rshared
		return []Finding{f}
	}
	prop, ok := rootPropagation(h.Mountinfo)
	if !ok {
		f.Problem = "dockerd's mount namespace shows no root mount"
		f.Fix = "see the root mount's propagation on the host with findmnt -o TARGET,PROPAGATION /; if it is not shared: " + rshared
		return []Finding{f}
	}
	if strings.Contains(prop, "shared:") {
		return nil
	}
	kind := "private"
	if prop != "" {
		kind = "a slave (" + prop + "), which receives the host's mounts but passes on none of its own"
	}
	f.Problem = fmt.Sprintf("the root mount in dockerd's mount namespace is %s: the network namespaces dockerd mounts for containers "+
		"never show up in a managed plugin's mount namespace; %s", kind, coping(h.NetnsMechanism))
	f.Fix = rshared
	return []Finding{f}
}

// coping says how dualstack copes with mounts that do not propagate.
func coping(mechanism string) string {
	switch sandboxkey.Mechanism(mechanism) {
	case sandboxkey.Proc:
		return "dualstack reaches them through dockerd's own (NETNS_ACCESS=auto took proc), " +
			"but NETNS_ACCESS=mount would fail, as would other plugins that rely on propagation"
	case sandboxkey.Mount:
		return "dualstack looks for them below its bind mount of the host's /run (NETNS_ACCESS=mount), where they never appear: containers cannot join its networks"
	}
	return "dualstack runs in the host's mount namespace and is not affected; managed plugins are"
}

// rootPropagation returns the propagation fields ("shared:N", "master:N",
// both, or "" for private) of the mount at / in a mountinfo text; false
// when there is none.
func rootPropagation(mountinfo string) (string, bool) {
	fields, found, _ := sandboxkey.Propagation(strings.NewReader(mountinfo), "/")
	return fields, found
}

// checkNetnsAccess: the plugin must reach the container network
// namespaces Docker names, or every join fails.
func checkNetnsAccess(h Host) []Finding {
	if h.NetnsProblem == "" {
		return nil
	}
	return []Finding{{
		Check: CheckNetnsAccess, Severity: SeverityError, Object: "NETNS_ACCESS=" + h.NetnsMechanism,
		Problem: "container network namespaces cannot be reached, so containers cannot join dualstack's networks: " + h.NetnsProblem,
		Fix:     sandboxkey.Remedy,
	}}
}
