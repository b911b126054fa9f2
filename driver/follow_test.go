package driver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
)

// TestFollowFirewall: with the follower running, what another hand does
// to the host's rules is undone within a second, as a user next to Docker
// would see it: the FORWARD policy set back to ACCEPT while dualstack's
// forwarding is on (also after a plugin restart: the family is
// recorded), Docker's jump put on top of FORWARD ahead of dualstack's
// hook (dockerd starting), and a new Docker --internal network, which
// only a DOCKER-ISOLATION rule names, isolated from dualstack's network.
func TestFollowFirewall(t *testing.T) {
	h := newHarness(t)
	// Forwarding off, as on a host without Docker: dualstack turns it on
	// and sets the policy (a new namespace may inherit the host's 1).
	for _, k := range []string{forwardKey4, forwardKey6} {
		nsRun(t, h.host, "sh", "-c", "echo 0 > /proc/sys/"+k)
	}
	const nid = "f0f0f0f0f0f01111"
	br := "ds-f0f0f0f0f0f0"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, "198.51.100.0/24", "2001:db8:f0::/64"))
	})
	follow := func() func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.in(func() error { h.d.FollowFirewall(ctx); return nil })
		}()
		time.Sleep(100 * time.Millisecond) // the watch subscribes
		return func() { cancel(); <-done }
	}
	stop := follow()
	defer func() { stop() }()

	within := func(what string, ok func() bool) {
		t.Helper()
		start := time.Now()
		for time.Since(start) < time.Second {
			if ok() {
				t.Logf("%s: put right after %s", what, time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: not put right within 1s:\n%s", what, nsRun(t, h.host, "iptables-nft-save", "-t", "filter"))
	}
	policyDrop := func(cmd string) func() bool { return func() bool { return h.policy(cmd) == "DROP" } }
	for _, cmd := range []string{"iptables-nft", "ip6tables-nft"} {
		if p := h.policy(cmd); p != "DROP" {
			t.Fatalf("%s FORWARD policy %s after dualstack turned forwarding on", cmd, p)
		}
		nsRun(t, h.host, cmd, "-P", "FORWARD", "ACCEPT")
		within(cmd+" FORWARD policy set to ACCEPT by another hand", policyDrop(cmd))
	}

	// dockerd starts: its chains, its jump on top of FORWARD.
	nsRun(t, h.host, "iptables-nft", "-N", "DOCKER-FORWARD")
	nsRun(t, h.host, "iptables-nft", "-I", "FORWARD", "-j", "DOCKER-FORWARD")
	hookFirst := func() bool {
		return strings.Contains(nsRun(t, h.host, "iptables-nft", "-S", "FORWARD"), "-P FORWARD DROP\n-A FORWARD -j DUALSTACK-FORWARD\n-A FORWARD -j DOCKER-FORWARD\n")
	}
	within("Docker's jump put ahead of dualstack's hook", hookFirst)

	// A Docker --internal network with a bridge of a custom name.
	nsRun(t, h.host, "iptables-nft", "-N", "DOCKER-INTERNAL")
	nsRun(t, h.host, "iptables-nft", "-A", "DOCKER-FORWARD", "-j", "DOCKER-INTERNAL")
	nsRun(t, h.host, "iptables-nft", "-A", "DOCKER-INTERNAL", "!", "-s", "203.0.113.0/24", "-o", "isolated0", "-j", "DROP")
	drop := fmt.Sprintf("-A DUALSTACK-DROP -i %s -o isolated0 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP", br)
	within("a new Docker --internal network", func() bool {
		return strings.Contains(nsRun(t, h.host, "iptables-nft", "-S", "DUALSTACK-DROP"), drop)
	})

	// A restart keeps the policy DROP, for forwarding that is on already.
	stop()
	h.restart()
	stop = follow()
	nsRun(t, h.host, "ip6tables-nft", "-P", "FORWARD", "ACCEPT")
	within("ip6tables FORWARD policy set to ACCEPT after a plugin restart", policyDrop("ip6tables-nft"))

	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid}) })
}
