package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// lockWait bounds the wait for the xtables lock (iptables-restore --wait),
// and callTimeout a whole iptables-save or iptables-restore.
const (
	lockWait    = 5 * time.Second
	callTimeout = 30 * time.Second
)

// Firewall applies dualstack's rules with one backend. Apply, Repair and
// Holds are not safe for concurrent use (the network driver serialises
// them, Follow's sync among them).
type Firewall struct {
	backend Backend
	// last is the state both families held after the last Apply that
	// succeeded (valid once ok is set): what a failed Apply goes back to.
	last State
	ok   bool
	// own remembers the restores this Firewall ran, for Follow.
	own ownChanges
	// observer hears of each restore and failure (nil: nobody).
	observer Observer
	// applied is the outcome of the last Apply or Repair: nil until the
	// first, then an error (nil when it succeeded); read by Applied.
	applied atomic.Pointer[error]
}

// Observer hears how the firewall's applies go, for the metrics.
type Observer interface {
	// Restored: family's iptables-restore took took, and succeeded.
	Restored(family Family, took time.Duration)
	// Failed: an Apply or Repair failed, for cause: one of
	// FailureCauses.
	Failed(cause string)
}

// The causes of a failed apply (Observer.Failed):
//
//	save     iptables-save could not read a family's rules
//	restore  iptables-restore refused the rules
//	lock     iptables-restore timed out waiting for the xtables lock
//	command  iptables-save or iptables-restore could not be run (missing)
var FailureCauses = []string{"save", "restore", "lock", "command"}

// New returns a Firewall that uses backend's iptables-save and
// iptables-restore (and their ip6tables twins).
func New(backend Backend) *Firewall { return &Firewall{backend: backend} }

// SetObserver has o hear of every restore and failure from now on; set
// it before the Firewall is used.
func (fw *Firewall) SetObserver(o Observer) { fw.observer = o }

// Applied reports whether the rules of the last Apply or Repair are in
// place: nil when it succeeded, else why not (also when there was none
// yet). Safe to call at any time.
func (fw *Firewall) Applied() error {
	p := fw.applied.Load()
	if p == nil {
		return errors.New("firewall: dualstack's rules were not applied yet")
	}
	return *p
}

// Backend reports the backend in use.
func (fw *Firewall) Backend() Backend { return fw.backend }

// Apply makes dualstack's chains and hooks in both families those of s:
// one iptables-save per family, and one iptables-restore --noflush per
// family that does not hold them already. Each restore is atomic: the
// family's rules are the old ones or the new ones, never a mix. When one
// family's restore fails, both go back to the rules of the last Apply
// that succeeded, so that the families never disagree (the error says
// whether that worked). With no network in s it removes every chain and
// hook of dualstack's. The calls run in the calling thread's network
// namespace.
func (fw *Firewall) Apply(s State) error {
	_, err := fw.Repair(s)
	return err
}

// Repair is Apply, and reports the families whose rules it changed:
// none when the kernel held s already.
func (fw *Firewall) Repair(s State) ([]Family, error) {
	changed, err := fw.repair(s)
	fw.applied.Store(&err)
	if err != nil && fw.observer != nil {
		fw.observer.Failed(failureCause(err))
	}
	return changed, err
}

func (fw *Firewall) repair(s State) ([]Family, error) {
	changed, err := fw.apply(s)
	if err == nil {
		fw.last, fw.ok = s, true
		return changed, nil
	}
	if !fw.ok {
		return changed, err
	}
	if _, back := fw.apply(fw.last); back != nil {
		return changed, fmt.Errorf("%w; going back to the last good rules failed too: %v", err, back)
	}
	return changed, fmt.Errorf("%w (both families hold the rules they had before this change)", err)
}

// failureError marks the error of a save or restore with its cause.
type failureError struct {
	cause string
	err   error
}

func (e *failureError) Error() string { return e.err.Error() }
func (e *failureError) Unwrap() error { return e.err }

// failureCause is the cause of an apply's error (FailureCauses).
func failureCause(err error) string {
	var fe *failureError
	if errors.As(err, &fe) {
		return fe.cause
	}
	return "restore"
}

// causeOf is the cause of a save or restore that failed with err and
// said msg on its standard error: cause if nothing tells more.
func causeOf(err error, msg, cause string) string {
	var ee *exec.Error
	switch {
	case errors.As(err, &ee):
		return "command"
	case strings.Contains(msg, "xtables lock"):
		return "lock"
	}
	return cause
}

// apply runs the restores that make the kernel hold s, both families at
// once, each started from this goroutine (so that it runs in this
// thread's network namespace).
func (fw *Firewall) apply(s State) ([]Family, error) {
	texts, err := fw.plans(s)
	if err != nil {
		return nil, err
	}
	var restores []*restore
	for i, f := range Families {
		if texts[i] != "" {
			restores = append(restores, &restore{family: f, text: texts[i]})
		}
	}
	for _, r := range restores {
		r.start(fw.backend)
		if r.cmd.Process != nil {
			fw.own.add(r.cmd.Process.Pid)
		}
	}
	var failed []error
	var changed []Family
	cause := ""
	for _, r := range restores {
		if err := r.wait(); err != nil {
			failed = append(failed, err)
			if cause == "" {
				cause = causeOf(err, r.stderr.String(), "restore")
			}
			continue
		}
		if fw.observer != nil {
			fw.observer.Restored(r.family, r.took)
		}
		changed = append(changed, r.family)
	}
	if len(failed) > 0 {
		return changed, &failureError{cause: cause, err: fmt.Errorf("firewall: %w", errors.Join(failed...))}
	}
	return changed, nil
}

// Holds reports whether both families hold s's rules already: what Apply
// would leave as it is.
func (fw *Firewall) Holds(s State) (bool, error) {
	texts, err := fw.plans(s)
	if err != nil {
		return false, err
	}
	return texts[0] == "" && texts[1] == "", nil
}

// plans reads both families' rules and returns, per family, the restore
// that makes them s's ("" where they are). Docker's bridges count in both
// families whichever family's rules name them: Engine 20.10 writes no
// ip6tables rules, yet its networks may have IPv6.
func (fw *Firewall) plans(s State) ([]string, error) {
	outs, errs := fw.saveAll()
	svs := make([]saved, len(Families))
	hosts := make([]Host, len(Families))
	var bridges []string
	for i, f := range Families {
		if errs[i] != nil {
			return nil, &failureError{cause: causeOf(errs[i], errs[i].Error(), "save"), err: fmt.Errorf("firewall: read the %s rules: %w", f, errs[i])}
		}
		svs[i] = parseSave(outs[i])
		hosts[i] = svs[i].host()
		bridges = append(bridges, hosts[i].DockerBridges...)
	}
	slices.Sort(bridges)
	bridges = slices.Compact(bridges)
	texts := make([]string, len(Families))
	for i, f := range Families {
		hosts[i].DockerBridges = bridges
		texts[i] = plan(f, Rules(s, f, hosts[i]), svs[i], s.ForwardDrop[f])
	}
	return texts, nil
}

// saveAll runs both families' iptables-save at once, from the calling
// goroutine.
func (fw *Firewall) saveAll() ([][]byte, []error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cmds := make([]*exec.Cmd, len(Families))
	outs := make([]bytes.Buffer, len(Families))
	errs := make([]error, len(Families))
	stderr := make([]bytes.Buffer, len(Families))
	for i, f := range Families {
		cmds[i] = exec.CommandContext(ctx, fw.backend.command(f)+"-save")
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &stderr[i]
		if errs[i] = cmds[i].Start(); errs[i] != nil {
			cmds[i] = nil
		}
	}
	res := make([][]byte, len(Families))
	for i, c := range cmds {
		if c == nil {
			continue
		}
		if err := c.Wait(); err != nil {
			errs[i] = fmt.Errorf("%s-save: %w: %s", fw.backend.command(Families[i]), err, strings.TrimSpace(stderr[i].String()))
			continue
		}
		res[i] = outs[i].Bytes()
	}
	return res, errs
}

// restore is one family's iptables-restore under way.
type restore struct {
	family Family
	text   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stderr bytes.Buffer
	err    error
	// started is when it started, took how long it ran (set by wait).
	started time.Time
	took    time.Duration
}

func (r *restore) start(b Backend) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	r.cancel = cancel
	r.cmd = exec.CommandContext(ctx, b.command(r.family)+"-restore", "--noflush", "--wait", strconv.Itoa(int(lockWait/time.Second)))
	r.cmd.Stdin = strings.NewReader(r.text)
	r.cmd.Stderr = &r.stderr
	r.started = time.Now()
	r.err = r.cmd.Start()
}

var failedLine = regexp.MustCompile(`line:? (\d+)`)

func (r *restore) wait() error {
	defer r.cancel()
	err := r.err
	if err == nil {
		err = r.cmd.Wait()
	}
	r.took = time.Since(r.started)
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(r.stderr.String())
	if m := failedLine.FindStringSubmatch(msg); m != nil {
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			if lines := strings.Split(r.text, "\n"); n <= len(lines) {
				msg += fmt.Sprintf(" (line %d: %q)", n, lines[n-1])
			}
		}
	}
	return fmt.Errorf("%s rules: %s: %w: %s (no %s rule was changed: the restore is atomic)", r.family, r.cmd.Path, err, msg, r.family)
}
