package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrUnreachable is matched (errors.Is) by every error that comes from the
// cluster store not answering in time: etcd down, partitioned away, or
// without a leader. Callers use it to tell "try again later" from "no".
var ErrUnreachable = errors.New("cluster store is unreachable")

// unreachableError names the endpoints, the cause and what the failure
// means for the caller's operation.
type unreachableError struct {
	endpoints string
	cause     error
	effect    string
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cluster store %s is unreachable (%s): %s", e.endpoints, reason(e.cause), e.effect)
}

func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }
func (e *unreachableError) Unwrap() error        { return e.cause }

// storeError wraps an error that etcd (or the way to it) returned. effect
// says what did not happen and what to do, for example "a new block of web
// cannot be leased; containers still start while this host's blocks have
// room".
func (s *Store) storeError(err error, effect string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
		return fmt.Errorf("%s: the request was canceled: %w", effect, err)
	}
	if isUnreachable(err) {
		return &unreachableError{endpoints: s.endpointList, cause: err, effect: effect}
	}
	return fmt.Errorf("cluster store %s refused the request (%s): %s", s.endpointList, reason(err), effect)
}

func isUnreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	var coded interface{ Code() codes.Code }
	code := status.Code(err)
	if errors.As(err, &coded) {
		code = coded.Code()
	}
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// reason is err's text without gRPC's "rpc error: code = X desc = " frame.
func reason(err error) string {
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK && st.Code() != codes.Unknown {
		return st.Message()
	}
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, " desc = "); ok {
		return after
	}
	return msg
}
