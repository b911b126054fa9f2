package firewall

import (
	"errors"
	"fmt"
	"os/exec"
	"testing"
)

// TestFailureCause: a failed apply's cause, from what failed and what
// iptables said.
func TestFailureCause(t *testing.T) {
	_, notFound := exec.LookPath("iptables-restore-that-is-not-there")
	for _, c := range []struct {
		err  error
		want string
	}{
		{&failureError{cause: causeOf(errors.New("exit status 4"), "Another app is currently holding the xtables lock. Stopped waiting after 5s.", "restore"), err: errors.New("x")}, "lock"},
		{&failureError{cause: causeOf(errors.New("exit status 2"), "line 3 failed", "restore"), err: errors.New("x")}, "restore"},
		{&failureError{cause: causeOf(notFound, "", "save"), err: errors.New("x")}, "command"},
		{fmt.Errorf("wrapped: %w", &failureError{cause: "save", err: errors.New("x")}), "save"},
		{errors.New("unmarked"), "restore"},
	} {
		if got := failureCause(c.err); got != c.want {
			t.Errorf("%v: cause %s, want %s", c.err, got, c.want)
		}
	}
}
