package agent

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// localTimings returns DefaultTimings with the waits that a cluster on one
// machine does not need made short: the first join's and the re-join's
// backoffs and the pipeline's calm pace. Timeouts stay as they are.
func localTimings() Timings {
	t := DefaultTimings()
	t.JoinBackoffMax = time.Second
	t.RejoinMin = time.Second
	t.RejoinMax = 5 * time.Second
	t.PipelineCalm = 500 * time.Millisecond
	return t
}

// Every timing is set, every minimum is at most its maximum, and the local
// timings are never longer than the daemon's.
func TestTimings(t *testing.T) {
	for _, tc := range []struct {
		name string
		tm   Timings
	}{
		{"default", DefaultTimings()},
		{"local", localTimings()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := reflect.ValueOf(tc.tm)
			def := reflect.ValueOf(DefaultTimings())
			for i := range v.NumField() {
				f := v.Type().Field(i)
				d, ok := v.Field(i).Interface().(time.Duration)
				if !ok {
					continue
				}
				if d <= 0 {
					t.Errorf("%s = %s; want it set", f.Name, d)
				}
				if long := def.Field(i).Interface().(time.Duration); d > long {
					t.Errorf("%s = %s, longer than the default %s", f.Name, d, long)
				}
				if strings.HasSuffix(f.Name, "Min") {
					maxName := strings.TrimSuffix(f.Name, "Min") + "Max"
					if m := v.FieldByName(maxName).Interface().(time.Duration); d > m {
						t.Errorf("%s = %s > %s = %s", f.Name, d, maxName, m)
					}
				}
			}
			if tc.tm.PipelineFast > tc.tm.PipelineCalm {
				t.Errorf("PipelineFast %s > PipelineCalm %s", tc.tm.PipelineFast, tc.tm.PipelineCalm)
			}
			if tc.tm.Agree.IdleTick == 0 {
				t.Error("Agree timings are not set")
			}
		})
	}
}
