package firewall

import "testing"

// counting is an Applier that counts what reaches it.
type counting struct{ applies, repairs int }

func (c *counting) Apply(State) error              { c.applies++; return nil }
func (c *counting) Repair(State) ([]Family, error) { c.repairs++; return []Family{IPv4}, nil }

// TestOrder: a repair of a state older than the last one applied does
// nothing (it would put an older state back); one of the latest does.
func TestOrder(t *testing.T) {
	var o Order
	var c counting
	old := o.Take()
	newer := o.Take()
	if err := o.Apply(&c, State{}, newer); err != nil {
		t.Fatal(err)
	}
	if changed, err := o.Repair(&c, State{}, old); err != nil || changed != nil || c.repairs != 0 {
		t.Fatalf("repair of an older state: changed %v, err %v, %d repairs; want none", changed, err, c.repairs)
	}
	if changed, err := o.Repair(&c, State{}, o.Take()); err != nil || len(changed) != 1 || c.repairs != 1 {
		t.Fatalf("repair of the latest state: changed %v, err %v, %d repairs; want one", changed, err, c.repairs)
	}
}
