package main

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/cluster/clustertest"
	"github.com/dualstack-net/dualstack/settings"
)

// TestBGPSettingsInStatus: bad BGP settings do not stop the plugin; the
// reason is in the host's record, and `dualstack cluster status` shows
// it on every host.
func TestBGPSettingsInStatus(t *testing.T) {
	endpoints, _, _ := clustertest.Etcd(t)
	env := map[string]string{"BGP_ASN": "65001", "BGP_PEERS": "203.0.113.1:3356", "CLUSTER_STORE": endpoints[0], "CLUSTER_NODE": "host1", "CLUSTER_ADDRESS": "198.51.100.11"}
	cfg, err := settings.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("bad BGP settings stopped the plugin: %v", err)
	}
	store, err := cluster.Open(cluster.Config{Endpoints: endpoints, Node: "host1", Addresses: []netip.Addr{netip.MustParseAddr("198.51.100.11")}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := logrus.New()
	log.SetOutput(io.Discard)
	sp, err := startBGP(cfg, store, log)
	if sp != nil || err == nil || !strings.Contains(err.Error(), "public AS 3356") {
		t.Fatalf("startBGP = %v, %v; want no speaker and the settings' problem", sp, err)
	}
	var out bytes.Buffer
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		st, err := store.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out.Reset()
		printStatus(&out, st)
		if strings.Contains(out.String(), "host1  not running: BGP is off: peer 203.0.113.1 is in public AS 3356") {
			return
		}
	}
	t.Fatalf("the status does not show the BGP problem:\n%s", out.String())
}
