package proxmox

import (
	"context"
	"time"
)

// HTTPMaybeApplied exposes httpMaybeApplied to the table test.
var HTTPMaybeApplied = httpMaybeApplied

// QueryString and BodyParams expose the request encoders to the
// large-integer tests.
var (
	QueryString = queryString
	BodyParams  = bodyParams
)

// SetReadRetrySleep replaces the wait between read retries of an Adapter
// (tests record the waits instead of sleeping).
func SetReadRetrySleep(c Client, sleep func(context.Context, time.Duration) error) {
	c.(*Adapter).retry.sleep = sleep
}

// ReadBackoffMax caps the wait between read retries.
const ReadBackoffMax = readBackoffMax
