//go:build integration

package local

import (
	"encoding/json"
	"net/netip"
	"os/exec"
	"slices"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// Issue 25: the Docker SDK for Python (Debian's python3-docker) creates a
// dualstack network with an IPv4 and two IPv6 subnets through
// IPAMConfig/IPAMPool, runs a container on it and reads its addresses
// from its inspect; the container holds an address in every subnet.
func TestPythonSDK(t *testing.T) {
	if out, err := exec.Command("python3", "-c", "import docker").CombinedOutput(); err != nil {
		t.Fatalf("the Docker SDK for Python is missing (apt-get install python3-docker, as .ci/run does): %v: %s", err, out)
	}
	const name = "ds-pysdk"
	t.Cleanup(func() {
		_, _ = harness.DockerCmd("rm", "-f", name)
		_, _ = harness.DockerCmd("network", "rm", name)
	})
	out, err := exec.Command("python3", "testdata/pythonsdk.py", harness.Eng.Host, harness.PluginName, harness.Image, name, harness.TestLabel).CombinedOutput()
	if err != nil {
		t.Fatalf("the SDK script failed: %v\n%s", err, out)
	}
	var got struct {
		IPv4, IPv6, Gateway string
		Inside              []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("the SDK script printed %q: %v", out, err)
	}
	t.Logf("the SDK sees: %s", out)
	in := func(addr, subnet string) bool {
		a, err := netip.ParseAddr(addr)
		return err == nil && netip.MustParsePrefix(subnet).Contains(a)
	}
	if !in(got.IPv4, "198.18.50.0/24") || !in(got.Gateway, "198.18.50.0/24") || !in(got.IPv6, "2001:db8:50::/64") {
		t.Errorf("inspect through the SDK: IPv4 %q (gateway %q), IPv6 %q; want addresses in 198.18.50.0/24 and 2001:db8:50::/64", got.IPv4, got.Gateway, got.IPv6)
	}
	for _, subnet := range []string{"2001:db8:50::/64", "2001:db8:51::/64"} {
		inSubnet := func(p string) bool {
			pf, err := netip.ParsePrefix(p)
			return err == nil && in(pf.Addr().String(), subnet)
		}
		if !slices.ContainsFunc(got.Inside, inSubnet) {
			t.Errorf("the container has no address in %s: %v", subnet, got.Inside)
		}
	}
	harness.NetworkGone(t, name)
}
