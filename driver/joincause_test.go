package driver

import (
	"errors"
	"fmt"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/state"
)

// TestJoinCause: an error keeps the first cause it was given through
// wrapping, says what it said, and one without a cause is other.
func TestJoinCause(t *testing.T) {
	base := errors.New("no such namespace")
	err := joinFailed(CauseSandbox, base)
	err = joinFailed(CauseState, fmt.Errorf("endpoint x: %w", err))
	if c := JoinCauseOf(err); c != CauseSandbox {
		t.Fatalf("cause %s, want %s", c, CauseSandbox)
	}
	if err.Error() != "endpoint x: no such namespace" || !errors.Is(err, base) {
		t.Fatalf("the error changed: %v", err)
	}
	if c := JoinCauseOf(base); c != CauseOther {
		t.Fatalf("an error without a cause: %s, want other", c)
	}
	if joinFailed(CauseLink, nil) != nil {
		t.Fatal("no error became one")
	}
}

// TestJoinFailedHook: a Join that fails is reported once, with its
// cause; a driver without the hook fails the same way.
func TestJoinFailedHook(t *testing.T) {
	var got []JoinCause
	for _, hook := range []func(JoinCause){nil, func(c JoinCause) { got = append(got, c) }} {
		db := state.NewMemory()
		log := logrus.New()
		log.SetLevel(logrus.PanicLevel)
		book, err := addrbook.New(addrbook.Config{DB: db, MachineID: "0123456789abcdef", Log: log})
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(Config{DB: db, Book: book, Log: log, JoinFailed: hook})
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.JoinFrom(0, &api.JoinRequest{NetworkID: "n1", EndpointID: "e1", SandboxKey: "/proc/self/ns/net"})
		d.Close()
		if err == nil {
			t.Fatal("a Join of an unknown endpoint succeeded")
		}
	}
	if len(got) != 1 || got[0] != CauseState {
		t.Fatalf("reported %v, want [state]", got)
	}
}
