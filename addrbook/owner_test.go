package addrbook

import "testing"

// TestOwnerStoredForm: each owner is kept in the form earlier versions
// wrote, and read back as the same owner, so that a state file reads the
// same across an upgrade.
func TestOwnerStoredForm(t *testing.T) {
	cases := []struct {
		owner  Owner
		stored string
	}{
		{Owner{}, ""},
		{Owner{Kind: Gateway}, "gateway"},
		{Owner{Kind: AutoGateway}, "gateway:auto"},
		{MACOwner("02:42:C0:00:02:03"), "02:42:C0:00:02:03"},
		{EndpointOwner("e1"), "endpoint:e1"},
		{HostLinkOwner("n1"), "host-link:n1"},
		{HostAddressOwner("n1"), "host-address:n1"},
		{StickyOwner("web-1"), "sticky:web-1"},
		{Owner{Other, "someone"}, "someone"},
	}
	for _, c := range cases {
		if got := c.owner.String(); got != c.stored {
			t.Errorf("%+v is stored as %q, want %q", c.owner, got, c.stored)
		}
		if got := ParseOwner(c.stored); got != c.owner {
			t.Errorf("%q reads as %+v, want %+v", c.stored, got, c.owner)
		}
	}
}
