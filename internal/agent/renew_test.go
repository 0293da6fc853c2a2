package agent

import (
	"testing"
	"time"
)

func TestRenewalDue(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name    string
		renewAt time.Time
		retryAt time.Time
		want    bool
	}{
		{"no certificates", time.Time{}, time.Time{}, false},
		{"not yet due", t0.Add(time.Second), time.Time{}, false},
		{"due", t0, time.Time{}, true},
		{"overdue", t0.Add(-time.Hour), time.Time{}, true},
		{"due, backing off", t0.Add(-time.Hour), t0.Add(time.Second), false},
		{"due, backoff over", t0.Add(-time.Hour), t0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := renewal{min: time.Second, max: time.Minute, retryAt: tt.retryAt}
			if got := r.due(tt.renewAt, t0); got != tt.want {
				t.Errorf("due = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRenewalBacksOff fails a renewal every time it is due, for as long as
// half a 24-hour certificate, as under a CA holder that is alive but does
// not sign: the attempts back off to one in 30 s and the log has a line
// at the first failure and then one every renewLogEvery.
func TestRenewalBacksOff(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r := renewal{min: 100 * time.Millisecond, max: 30 * time.Second}
	tick := 2 * time.Second // the pipeline's calm pace
	var attempts, logged int
	var waits []time.Duration
	last := t0
	for now := t0; now.Before(t0.Add(12 * time.Hour)); now = now.Add(tick) {
		if !r.due(t0, now) {
			continue
		}
		if attempts > 0 && len(waits) < 10 {
			waits = append(waits, now.Sub(last))
		}
		attempts++
		last = now
		if r.failed(now) {
			logged++
		}
	}
	want := []time.Duration{2, 2, 2, 2, 2, 4, 8, 14, 26, 30} // 0.1 s doubling to 30 s, on 2 s ticks
	for i := range want {
		want[i] *= time.Second
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits between attempts %v, want %v", waits, want)
		}
	}
	// 12 hours at one attempt in 30 s, and a line every 10 minutes.
	if attempts < 12*60*2 || attempts > 12*60*2+10 {
		t.Errorf("%d attempts in 12 hours, want about one every 30 s", attempts)
	}
	if want := int(12*time.Hour/renewLogEvery) + 1; logged < want-1 || logged > want {
		t.Errorf("%d failures logged, want about %d", logged, want)
	}
	if r.fails != attempts {
		t.Errorf("fails = %d, want %d", r.fails, attempts)
	}

	if n := r.succeeded(); n != attempts {
		t.Errorf("succeeded = %d, want %d", n, attempts)
	}
	if r != (renewal{min: 100 * time.Millisecond, max: 30 * time.Second}) {
		t.Errorf("after a success %+v, want a fresh renewal", r)
	}
	now := t0.Add(13 * time.Hour)
	if !r.due(t0, now) || !r.failed(now) {
		t.Error("the first failure after a success is not attempted at once and logged")
	}
}
