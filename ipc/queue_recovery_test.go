package ipc

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestMeasureQueueRecovery kills a consumer holding values and a producer
// with puts waiting, three times each: every round must see the others go
// on (MeasureQueueRecovery checks what they got), the dead consumer's
// values counted as stranded, the producer's accepted values delivered once
// and in order.
func TestMeasureQueueRecovery(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, kind := range QueueRecoveryKinds() {
		r, err := MeasureQueueRecovery(ctx, kind, 3)
		if err != nil {
			t.Fatal(err)
		}
		if r.N != 3 || len(r.Samples) != 3 || len(r.Dropped) != 3 || r.Median > r.Max {
			t.Errorf("%s: %+v; want 3 samples, median <= max", kind, r)
		}
		switch kind {
		case RecoverConsumer:
			if r.Lost != 3*recoveryHeld || !strings.Contains(r.Observed, "stranded") || !strings.Contains(r.Observed, "(pid ") {
				t.Errorf("consumer: lost %d, observed %q; want %d stranded and the dead pid", r.Lost, r.Observed, 3*recoveryHeld)
			}
		case RecoverProducer:
			if r.Delivered < 3*recoveryFull || r.Delivered+r.Lost != 3*(recoveryFull+recoveryHeld) || !strings.Contains(r.Observed, "(pid ") {
				t.Errorf("producer: delivered %d, lost %d, observed %q", r.Delivered, r.Lost, r.Observed)
			}
		}
	}
	if _, err := MeasureQueueRecovery(ctx, "hub", 1); err == nil {
		t.Errorf("MeasureQueueRecovery of an unknown kind: no error")
	}
}

// BenchmarkQueueRecovery measures, for a consumer and a producer, the time
// from the SIGKILL to the others going on, one kill per iteration, and
// reports the median and the maximum; ns/op is setup-dominated and hidden.
//
//	go test -run '^$' -bench BenchmarkQueueRecovery -benchtime 20x ./ipc
func BenchmarkQueueRecovery(b *testing.B) {
	for _, kind := range QueueRecoveryKinds() {
		b.Run("kind="+kind, func(b *testing.B) {
			res, err := MeasureQueueRecovery(b.Context(), kind, b.N)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(res.Median.Nanoseconds()), "median-ns")
			b.ReportMetric(float64(res.Max.Nanoseconds()), "max-ns")
		})
	}
}
