package shm

import (
	"testing"
)

// BenchmarkRecovery measures, for each primitive, the time from the
// SIGKILL of a holder (a party, for the barrier) to a waiter going on with
// the error naming it: one kill per iteration. It reports the median and
// the maximum over the iterations; ns/op is setup-dominated and hidden.
//
//	go test -run '^$' -bench BenchmarkRecovery -benchtime 50x ./shm
func BenchmarkRecovery(b *testing.B) {
	for _, kind := range RecoveryKinds() {
		b.Run("kind="+kind, func(b *testing.B) {
			res, err := MeasureRecovery(b.Context(), kind, b.N)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(res.Median.Nanoseconds()), "median-ns")
			b.ReportMetric(float64(res.Max.Nanoseconds()), "max-ns")
			b.ReportMetric(float64(res.N), "kills")
		})
	}
}
