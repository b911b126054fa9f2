package driver

import "errors"

// JoinCause is why a join failed, one of a small fixed set, for the
// metrics (dualstack_join_failures_total{cause}):
//
//	sandbox         the container's network namespace cannot be reached
//	                or prepared
//	interface_name  the interface name the endpoint asks for is taken in
//	                the container
//	link            the container's interface did not arrive or could not
//	                be found (a bad MAC address, a timeout)
//	address         the container's addresses or the gateways of a
//	                cluster network's blocks could not be put in place
//	firewall        the endpoint's published ports could not be revoked
//	state           the endpoint is unknown, or the state file could not
//	                record the join
//	other           anything else
type JoinCause string

// The causes of a failed join.
const (
	CauseSandbox       JoinCause = "sandbox"
	CauseInterfaceName JoinCause = "interface_name"
	CauseLink          JoinCause = "link"
	CauseAddress       JoinCause = "address"
	CauseFirewall      JoinCause = "firewall"
	CauseState         JoinCause = "state"
	CauseOther         JoinCause = "other"
)

// JoinCauses lists every cause, so that the metrics can show each at 0.
var JoinCauses = []JoinCause{CauseSandbox, CauseInterfaceName, CauseLink, CauseAddress, CauseFirewall, CauseState, CauseOther}

// joinError is a join's error with its cause; its text is the error's.
type joinError struct {
	cause JoinCause
	err   error
}

func (e *joinError) Error() string { return e.err.Error() }
func (e *joinError) Unwrap() error { return e.err }

// joinFailed gives err (nil: none) its cause, unless it has one.
func joinFailed(cause JoinCause, err error) error {
	var je *joinError
	if err == nil || errors.As(err, &je) {
		return err
	}
	return &joinError{cause: cause, err: err}
}

// JoinCauseOf is the cause of a join's error: other for an error that
// names none.
func JoinCauseOf(err error) JoinCause {
	var je *joinError
	if errors.As(err, &je) {
		return je.cause
	}
	return CauseOther
}

// joinFailure tells the JoinFailed hook, if there is one, that a join
// failed with err (nil: it did not).
func (d *Driver) joinFailure(err error) {
	if err != nil && d.cfg.JoinFailed != nil {
		d.cfg.JoinFailed(JoinCauseOf(err))
	}
}
