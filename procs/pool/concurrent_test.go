package pool

import (
	"errors"
	"sync"
	"syscall"
	"testing"
)

// TestConcurrentMaps: maps started at once on one pool run one after the
// other. One ends early (its callback fails), leaving chunks in flight
// whose answers reach later maps and must be dropped there; a worker is
// killed during another. Each map gets exactly its own results, once.
func TestConcurrentMaps(t *testing.T) {
	ctx := testCtx(t)
	p := newPool(t, ctx, 2)
	errEarly := errors.New("enough")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			n := 3000 + 500*g
			seen := make([]int, n)
			killed := g != 1
			err := MapUnordered(ctx, p, ints2seq(n), 1+g*3, func(i int, r int, err error) error {
				if err != nil {
					return err
				}
				if r != i*i {
					t.Errorf("map %d: result %d = %d, want %d", g, i, r, i*i)
				}
				seen[i]++
				if g == 0 && i%7 == 3 {
					return errEarly
				}
				if !killed {
					if busy := p.Busy(); len(busy) > 0 {
						killed = true
						syscall.Kill(busy[0], syscall.SIGKILL)
					}
				}
				return nil
			})
			if g == 0 {
				if !errors.Is(err, errEarly) {
					t.Errorf("map 0: err = %v, want its callback's", err)
				}
				return
			}
			if err != nil {
				t.Errorf("map %d: %v", g, err)
				return
			}
			for i, c := range seen {
				if c != 1 {
					t.Errorf("map %d: result %d delivered %d times", g, i, c)
				}
			}
		})
	}
	wg.Wait()
}
