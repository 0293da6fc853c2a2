package casvc

import (
	"sync"
	"time"
)

// maxBuckets is the number of per-node buckets above which full buckets
// (nodes that have been quiet long enough to refill) are dropped. Only
// nodes holding the join token get past authentication and so get a bucket.
const maxBuckets = 10_000

// limiter is a token bucket per key. It is safe for concurrent use.
type limiter struct {
	rate RateLimit

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate RateLimit) *limiter {
	return &limiter{rate: rate, buckets: make(map[string]*bucket)}
}

// refill adds the tokens earned since b.last, up to the burst.
func (l *limiter) refill(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens += float64(elapsed) / float64(l.rate.Every)
		b.last = now
	}
	if burst := float64(l.rate.Burst); b.tokens > burst {
		b.tokens = burst
	}
}

// allow takes a token from key's bucket if it has one.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.pruneLocked(now)
		}
		b = &bucket{tokens: float64(l.rate.Burst), last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// pruneLocked drops the buckets that are full again: forgetting them
// changes nothing.
func (l *limiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= float64(l.rate.Burst) {
			delete(l.buckets, k)
		}
	}
}
