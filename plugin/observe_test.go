package plugin

import (
	"io"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

type seen struct {
	call string
	ok   bool
}

type recorder struct {
	mu    sync.Mutex
	calls []seen
}

func (r *recorder) Request(call string, took time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if took < 0 {
		call += " (negative time)"
	}
	r.calls = append(r.calls, seen{call, ok})
}

// TestObserve: every request of Docker's is observed once, by its call's
// name, as ok or refused; a malformed one is refused too.
func TestObserve(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	s := New(fakeNetwork{}, &fakeIPAM{}, log)
	rec := &recorder{}
	s.Observe(rec)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	post(t, ts, "/NetworkDriver.GetCapabilities", "")
	post(t, ts, "/NetworkDriver.Join", `{"NetworkID":"n","EndpointID":"e","SandboxKey":"/x"}`)
	post(t, ts, "/NetworkDriver.Join", `{`)
	want := []seen{{"NetworkDriver.GetCapabilities", true}, {"NetworkDriver.Join", false}, {"NetworkDriver.Join", false}}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.calls) != len(want) {
		t.Fatalf("observed %v, want %v", rec.calls, want)
	}
	for i := range want {
		if rec.calls[i] != want[i] {
			t.Fatalf("observed %v, want %v", rec.calls, want)
		}
	}
}
