//go:build !linux

package peer

import "context"

// subscribeNet has no notifications to offer here: changes are found by polling (netPoll).
func subscribeNet(context.Context, chan<- struct{}) (stop func()) { return func() {} }
