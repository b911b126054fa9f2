//go:build integration

package ndp

import (
	"slices"
	"syscall"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// hostState is what the NDP proxy changes on the host: the proxy entries
// (every interface's) and dsnd0's sysctls.
func hostState(t *testing.T) []string {
	t.Helper()
	return append(harness.ProxyEntries(t), harness.NDPSysctls(t, harness.OnLinkIF)...)
}

// Acceptance: the plugin's SIGKILL, a dockerd restart and `docker network
// rm` behave as for every other network: running containers stay
// reachable (while the plugin is down too), new ones work, and once the
// last ndp_proxy network is gone the host is as it was before the first.
func TestRestartsAndRemoval(t *testing.T) {
	b := harness.NewOnLink(t)
	before := hostState(t)
	ndpNet(t, "ds-nd-r1", "198.18.63.0/24", "2001:db8:6e:0:d3::/80")
	ndpNet(t, "ds-nd-r2", "198.18.64.0/24", "2001:db8:6e:0:d4::/80")
	r1 := harness.StartServers(t, "ds-nd-r1", []string{"ds-nd-r1-a"})
	r2 := harness.StartServers(t, "ds-nd-r2", []string{"ds-nd-r2-a"})
	reachable(t, b, append(r1, r2...))

	// The plugin down: stopped (SIGSTOP), it runs nothing until its
	// SIGKILL; the kernel answers for the containers on its own.
	pids := harness.PluginPIDs()
	if len(pids) != 1 {
		t.Fatalf("want one plugin process, found %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pids[0], syscall.SIGCONT) })
	reachable(t, b, append(r1, r2...))
	harness.KillPlugin(t)
	t.Log("the plugin is back after SIGKILL")
	reachable(t, b, append(r1, r2...))
	r1 = append(r1, harness.StartServers(t, "ds-nd-r1", []string{"ds-nd-r1-b"})...)
	reachable(t, b, r1)
	wantProxied(t, append(r1, r2...), nil)

	if err := harness.Eng.Restart(); err != nil {
		t.Fatal(err)
	}
	harness.WaitPlugin(t)
	t.Log("dockerd restarted")
	reachable(t, b, append(r1, r2...))
	r1 = append(r1, harness.StartServers(t, "ds-nd-r1", []string{"ds-nd-r1-c"})...)
	reachable(t, b, r1)
	wantProxied(t, append(r1, r2...), nil)

	// The first network goes: its containers' addresses are no longer
	// answered for, the other network's still are.
	for _, s := range r1 {
		harness.Docker(t, "rm", "-f", s.Name)
	}
	if err := harness.RemoveNetwork("ds-nd-r1"); err != nil {
		t.Fatal(err)
	}
	wantProxied(t, r2, r1)
	reachable(t, b, r2)
	// The last one goes: the host is as before.
	harness.Docker(t, "rm", "-f", r2[0].Name)
	if err := harness.RemoveNetwork("ds-nd-r2"); err != nil {
		t.Fatal(err)
	}
	if after := hostState(t); !slices.Equal(after, before) {
		t.Errorf("after the last ndp_proxy network went, the host has\n%v\nwant, as before the first:\n%v", after, before)
	}
}
