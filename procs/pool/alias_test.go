package pool

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"ipcplay/procs"
)

// Roles returning results msgpack's Decoder could in principle alias the
// answer's bytes with: a []byte, and a struct holding one, a string, a map
// of byte slices and an interface value.
const (
	roleBytes = "pool-test-bytes"
	roleBlob  = "pool-test-blob"
)

type blob struct {
	B []byte
	S string
	M map[string][]byte
	A any
}

func blobOf(n int) blob {
	s := fmt.Sprintf("result %d %s", n, bytes.Repeat([]byte{byte('a' + n%26)}, n%40))
	return blob{B: []byte(s), S: s, M: map[string][]byte{"k": []byte(s)}, A: []byte(s)}
}

func init() {
	procs.Register(roleBytes, WorkerMain(Typed(func(ctx context.Context, n int) ([]byte, error) {
		return []byte(blobOf(n).S), nil
	})))
	procs.Register(roleBlob, WorkerMain(Typed(func(ctx context.Context, n int) (blob, error) {
		return blobOf(n), nil
	})))
}

// TestReusedAnswersAliasNothing: each worker's reader receives answers into
// the buffer of one already delivered. Results of types decoded by
// msgpack's Decoder (byte slices, alone and inside a struct, a map and an
// interface) are kept, and mutated, past many later chunks of two maps in
// a row; each must still hold its own bytes.
func TestReusedAnswersAliasNothing(t *testing.T) {
	ctx := testCtx(t)
	const n = 4000
	tasks := ints(n)
	pb, err := New(ctx, Config{Role: roleBytes, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pb.Close()
		noChildren(t)
	})
	for range 2 {
		kept := make([][]byte, n)
		err := MapUnordered(ctx, pb, ints2seq(n), 3, func(i int, r []byte, err error) error {
			if err != nil {
				return err
			}
			kept[i] = r
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range kept {
			if want := blobOf(i).S; string(r) != want {
				t.Fatalf("result %d: %q, want %q", i, r, want)
			}
		}
	}
	pl, err := New(ctx, Config{Role: roleBlob, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	got, err := Map[int, blob](ctx, pl, tasks, 5)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Map[int, blob](ctx, pl, tasks, 11)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		want := blobOf(i).S
		for _, r := range []blob{got[i], again[i]} {
			a, _ := r.A.([]byte)
			if string(r.B) != want || r.S != want || string(r.M["k"]) != want || string(a) != want {
				t.Fatalf("result %d: %+v, want %q", i, r, want)
			}
		}
		got[i].B[0] = 'X' // a result's bytes are the caller's own
	}
	for i := range again {
		if string(again[i].B) != blobOf(i).S {
			t.Fatalf("result %d of the second map changed with the first's: %q", i, again[i].B)
		}
	}
}
