package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dualstack-net/dualstack/doctor"
)

func TestPrintDoctor(t *testing.T) {
	var b bytes.Buffer
	if err := printDoctor(&b, doctor.Report{Checks: []string{"a", "b", "c"}, Findings: []doctor.Finding{}}); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "no problems found (3 checks)\n" {
		t.Errorf("healthy: %q", got)
	}
	b.Reset()
	rep := doctor.Report{Checks: []string{"forward-policy", "route-collision"}, Findings: []doctor.Finding{
		{Check: "forward-policy", Severity: "error", Object: "FORWARD", Problem: "the FORWARD policy is ACCEPT", Fix: "iptables -P FORWARD DROP"},
		{Check: "route-collision", Severity: "error", Object: "198.51.100.0/25 dev lo", Problem: "the route overlaps", Fix: "ip route del 198.51.100.0/25 dev lo"},
	}}
	if err := printDoctor(&b, rep); err != nil {
		t.Fatal(err)
	}
	want := "the FORWARD policy is ACCEPT (FORWARD)\n  fix: iptables -P FORWARD DROP\n" +
		"the route overlaps (198.51.100.0/25 dev lo)\n  fix: ip route del 198.51.100.0/25 dev lo\n"
	if got := b.String(); got != want {
		t.Errorf("findings:\n%s\nwant:\n%s", got, want)
	}
}

// TestDoctorCommand: the CLI asks the plugin's socket, prints the report,
// and says whether it found something; --json prints the answer as is.
func TestDoctorCommand(t *testing.T) {
	answer := `{"checks":["mount-propagation"],"findings":[{"check":"mount-propagation","severity":"warning","object":"/","problem":"the root mount is private","fix":"mount --make-rshared /"}]}`
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, r.Method+" "+r.URL.Path)
		_, _ = w.Write([]byte(answer))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	var b bytes.Buffer
	found, err := doctorCommand([]string{"--socket", sock}, &b)
	if err != nil || !found || b.String() != "the root mount is private (/)\n  fix: mount --make-rshared /\n" {
		t.Errorf("doctor = %v, %v:\n%s", found, err, b.String())
	}
	b.Reset()
	found, err = doctorCommand([]string{"--json", "--socket", sock}, &b)
	var rep doctor.Report
	if err != nil || !found || json.Unmarshal(b.Bytes(), &rep) != nil || len(rep.Findings) != 1 || strings.TrimSpace(b.String()) != answer {
		t.Errorf("doctor --json = %v, %v:\n%s", found, err, b.String())
	}
	mu.Lock()
	if len(asked) != 2 || asked[0] != "GET "+doctor.Path {
		t.Errorf("asked %v", asked)
	}
	answer = `{"checks":["mount-propagation","netns-access"],"findings":[]}`
	mu.Unlock()
	b.Reset()
	if found, err := doctorCommand([]string{"--socket", sock}, &b); err != nil || found || b.String() != "no problems found (2 checks)\n" {
		t.Errorf("healthy: %v, %v: %q", found, err, b.String())
	}
	if _, err := doctorCommand([]string{"--socket", filepath.Join(t.TempDir(), "none.sock")}, &b); err == nil || !strings.Contains(err.Error(), "--socket") {
		t.Errorf("no plugin: %v", err)
	}
}
