package delegation

import (
	"math/rand/v2"
	"time"
)

// Timing holds the client's transmission parameters (RFC 8415 section 7.6).
// A zero field takes RFC 8415's value; tests shorten them.
type Timing struct {
	SolMaxDelay time.Duration // first Solicit delayed by up to this: 1 s
	SolTimeout  time.Duration // 1 s
	SolMaxRT    time.Duration // 120 s (RFC 8415's 3600 s, capped)
	ReqTimeout  time.Duration // 1 s
	ReqMaxRT    time.Duration // 30 s
	ReqMaxRC    int           // 10
	RenTimeout  time.Duration // 10 s
	RenMaxRT    time.Duration // 600 s
	RebTimeout  time.Duration // 10 s
	RebMaxRT    time.Duration // 600 s
	RelTimeout  time.Duration // 1 s
	RelMaxRC    int           // 4
	// MinRenew is the shortest time from a Reply to the next Renew, so
	// that a server granting a preferred lifetime of 0 is not asked again
	// at once: 1 s.
	MinRenew time.Duration
}

// withDefaults fills the zero fields with RFC 8415's values.
func (t Timing) withDefaults() Timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.SolMaxDelay, time.Second)
	def(&t.SolTimeout, time.Second)
	def(&t.SolMaxRT, 120*time.Second)
	def(&t.ReqTimeout, time.Second)
	def(&t.ReqMaxRT, 30*time.Second)
	def(&t.RenTimeout, 10*time.Second)
	def(&t.RenMaxRT, 600*time.Second)
	def(&t.RebTimeout, 10*time.Second)
	def(&t.RebMaxRT, 600*time.Second)
	def(&t.RelTimeout, time.Second)
	def(&t.MinRenew, time.Second)
	if t.ReqMaxRC <= 0 {
		t.ReqMaxRC = 10
	}
	if t.RelMaxRC <= 0 {
		t.RelMaxRC = 4
	}
	return t
}

// jitter returns RAND of RFC 8415 section 15: uniform in [-0.1, 0.1].
func jitter() float64 { return rand.Float64()*0.2 - 0.1 }

// nextRT returns the retransmission timeout after prev (0 for the first
// transmission), per RFC 8415 section 15, with rnd in [-0.1, 0.1]. The
// first RT of a Solicit is greater than IRT (positive).
func nextRT(prev, irt, mrt time.Duration, rnd float64, positive bool) time.Duration {
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * rnd) }
	var rt time.Duration
	if prev == 0 {
		if positive && rnd <= 0 {
			rnd = -rnd
			if rnd == 0 {
				rnd = 0.05
			}
		}
		rt = irt + scale(irt)
	} else {
		rt = 2*prev + scale(prev)
	}
	if mrt > 0 && rt > mrt {
		rt = mrt + scale(mrt)
	}
	return rt
}

// infinity is the lifetime (and T1/T2) 0xffffffff seconds, which never
// ends (RFC 8415 section 7.7).
const infinity = time.Duration(0xffffffff) * time.Second

// timers returns when to Renew (T1) and Rebind (T2) after a Reply at now
// that granted t1, t2 and a prefix with lifetimes preferred and valid. T1
// or T2 of 0 leave the choice to the client: 0.5 and 0.8 of the preferred
// lifetime. Renew comes no sooner than minRenew, and the times are kept
// in order: renew <= rebind <= end of valid.
func timers(now time.Time, t1, t2, preferred, valid, minRenew time.Duration) (renew, rebind time.Time) {
	if preferred >= infinity {
		preferred = infinity
	}
	if t1 == 0 {
		t1 = preferred / 2
	}
	if t2 == 0 {
		t2 = preferred * 4 / 5
	}
	t1 = max(t1, minRenew)
	t2 = max(t2, t1)
	if valid < infinity {
		t2 = min(t2, valid)
		t1 = min(t1, t2)
	}
	return now.Add(t1), now.Add(t2)
}
