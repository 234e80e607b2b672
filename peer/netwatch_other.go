//go:build !linux

package peer

import "context"

// cheapGateway: finding the default gateway runs a program here (jackpal/gateway): the
// network's state is its addresses alone.
const cheapGateway = false

// subscribeNet has no notifications to offer here: changes are found by polling (netPoll).
func subscribeNet(context.Context, chan<- struct{}) (stop func()) { return func() {} }
