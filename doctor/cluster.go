package doctor

import (
	"fmt"
	"strings"
	"time"
)

// checkClusterStore: a cluster host must reach the cluster store, or it
// cannot lease blocks for new networks and containers, and its lease
// lapses (other hosts may then take its blocks).
func checkClusterStore(h Host) []Finding {
	if h.Cluster == nil || h.Cluster.Error == "" {
		return nil
	}
	endpoints := strings.Join(h.Cluster.Endpoints, ",")
	health := "curl ENDPOINT/health"
	if len(h.Cluster.Endpoints) > 0 {
		health = "curl " + h.Cluster.Endpoints[0] + "/health"
	}
	return []Finding{{
		Check: CheckClusterStore, Severity: SeverityError, Object: endpoints,
		Problem: "the cluster store does not answer: " + h.Cluster.Error,
		Fix: fmt.Sprintf("check that etcd runs at %s and that this host reaches it (%s); "+
			"for https, the certificates in CLUSTER_TLS_DIR (ca.pem, cert.pem, key.pem); the endpoints are the CLUSTER_STORE setting", endpoints, health),
	}}
}

// checkBGPSession: every BGP session should be established, or the
// router does not learn what the host announces (nor the host what it
// learns).
func checkBGPSession(h Host) []Finding {
	if h.BGP == nil {
		return nil
	}
	if h.BGP.Error != "" {
		return []Finding{{
			Check: CheckBGPSession, Severity: SeverityError, Object: "BGP",
			Problem: "BGP does not run: " + h.BGP.Error,
			Fix:     "correct the BGP settings (BGP_ASN, BGP_PEERS, BGP_ROUTER_ID) with docker plugin set, with the plugin disabled",
		}}
	}
	var out []Finding
	for _, p := range h.BGP.Peers {
		if p.State == "established" {
			continue
		}
		problem := fmt.Sprintf("the BGP session with %s (AS %d) is %s", p.Address, p.ASN, p.State)
		if !p.Since.IsZero() {
			problem += fmt.Sprintf(" since %s", p.Since.UTC().Format(time.RFC3339))
		}
		if p.Error != "" {
			problem += ": " + p.Error
		}
		out = append(out, Finding{
			Check: CheckBGPSession, Severity: SeverityError, Object: fmt.Sprintf("peer %s AS %d", p.Address, p.ASN),
			Problem: problem + "; the router does not learn the prefixes this host announces",
			Fix: fmt.Sprintf("configure the router at %s with this host (router ID %s, AS %d) as neighbour, "+
				"let TCP port 179 through between them, and give both ends the same password (BGP_PASSWORD); "+
				"dualstack cluster status shows every host's sessions", p.Address, h.BGP.RouterID, h.BGP.ASN),
		})
	}
	return out
}
