package agent

import "time"

// renewLogEvery is how often a renewal that keeps failing is logged again
// after its first failure.
const renewLogEvery = 10 * time.Minute

// renewal spaces the attempts of a certificate renewal that fails, and
// the log lines about them. A CA holder that is down is replaced by
// another server after ca_failover_after; one that is alive in gossip but
// does not sign may stay so for hours, and half of a certificate's
// lifetime is left to outlast it. Meanwhile the attempts back off from min
// to max, so that every node of a large cluster retrying at once stays
// well within what one CA holder signs, and the log says so once and then
// every renewLogEvery rather than on each attempt.
//
// The zero value with min and max set is ready; the pipeline's one
// goroutine owns it.
type renewal struct {
	min, max time.Duration
	fails    int           // attempts that failed since the last success
	backoff  time.Duration // the wait after the last failure
	retryAt  time.Time     // no attempt before
	loggedAt time.Time     // the last failure that was logged
}

// due reports whether to attempt a renewal at now of certificates due at
// renewAt (none when zero).
func (r *renewal) due(renewAt, now time.Time) bool {
	return !renewAt.IsZero() && !now.Before(renewAt) && !now.Before(r.retryAt)
}

// failed records an attempt that failed at now and reports whether to log
// it: the first failure, then one every renewLogEvery.
func (r *renewal) failed(now time.Time) (log bool) {
	r.fails++
	r.backoff = min(max(2*r.backoff, r.min), r.max)
	r.retryAt = now.Add(r.backoff)
	if r.fails == 1 || now.Sub(r.loggedAt) >= renewLogEvery {
		r.loggedAt = now
		return true
	}
	return false
}

// succeeded records an attempt that succeeded and returns how many had
// failed before it.
func (r *renewal) succeeded() (failed int) {
	failed = r.fails
	*r = renewal{min: r.min, max: r.max}
	return failed
}
