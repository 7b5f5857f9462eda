package shm

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"ipcplay/procs"
)

func TestArrayOps(t *testing.T) {
	mem := Local(4096)
	i64, err := MakeArray[int64](mem, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	off := ArraySize(TypeInt64, 3)
	u32, err := MakeArray[uint32](mem, off, 5)
	if err != nil {
		t.Fatal(err)
	}
	off += ArraySize(TypeUint32, 5)
	f64, err := MakeArray[float64](mem, off, 2)
	if err != nil {
		t.Fatal(err)
	}
	off += ArraySize(TypeFloat64, 2)
	u64, err := MakeArray[uint64](mem, off, 1)
	if err != nil {
		t.Fatal(err)
	}
	off += ArraySize(TypeUint64, 1)
	v, err := MakeValue[float64](mem, off)
	if err != nil {
		t.Fatal(err)
	}

	i64.Store(2, -5)
	if got := i64.Add(2, 3); got != -2 {
		t.Errorf("int64 Add = %d, want -2", got)
	}
	if i64.Load(0) != 0 || i64.Load(1) != 0 {
		t.Error("neighbours of an int64 changed")
	}
	u32.Store(4, math.MaxUint32)
	if got := u32.Add(4, 2); got != 1 {
		t.Errorf("uint32 Add wraps to %d, want 1", got)
	}
	if u32.Load(3) != 0 || u32.Swap(4, 7) != 1 || u32.Load(4) != 7 {
		t.Error("uint32 Swap or neighbour")
	}
	f64.Store(1, 1.5)
	if got := f64.Add(1, 0.25); got != 1.75 {
		t.Errorf("float64 Add = %v, want 1.75", got)
	}
	if !f64.CompareAndSwap(1, 1.75, -3) || f64.CompareAndSwap(1, 1.75, 0) || f64.Load(1) != -3 {
		t.Error("float64 CompareAndSwap")
	}
	u64.Store(0, math.MaxUint64)
	if got := u64.Add(0, 1); got != 0 {
		t.Errorf("uint64 Add wraps to %d, want 0", got)
	}
	v.Store(2)
	if v.Add(0.5) != 2.5 || v.Swap(1) != 2.5 || !v.CompareAndSwap(1, 4) || v.Load() != 4 {
		t.Error("float64 Value operations")
	}
	// The same memory opened again reads the same values.
	again, err := OpenArray[float64](mem, ArraySize(TypeInt64, 3)+ArraySize(TypeUint32, 5), AnyLen)
	if err != nil || again.Len() != 2 || again.Load(1) != -3 {
		t.Fatalf("OpenArray AnyLen = %v, %v", again, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Load(3) of a 3-value array did not panic")
		}
	}()
	i64.Load(3)
}

// TestFloatAddIsAtomic runs concurrent float Adds: the CAS loop loses none.
func TestFloatAddIsAtomic(t *testing.T) {
	v, err := MakeValue[float64](Local(ValueSize), 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5000 {
				v.Add(0.5)
			}
		})
	}
	wg.Wait()
	if got := v.Load(); got != 8*5000*0.5 {
		t.Errorf("sum = %v, want %v", got, 8*5000*0.5)
	}
}

func TestBytes(t *testing.T) {
	mem := Local(256)
	b, err := MakeBytes(mem, 8, 100)
	if err != nil {
		t.Fatal(err)
	}
	copy(b.Bytes(), "hello")
	b2, err := OpenBytes(mem, 8, 100)
	if err != nil || !bytes.HasPrefix(b2.Bytes(), []byte("hello")) || b2.Len() != 100 {
		t.Fatalf("OpenBytes = %v", err)
	}
	if e, err := MakeBytes(mem, 200, 0); err != nil || e.Len() != 0 {
		t.Fatalf("empty bytes: %v", err)
	}
}

func TestHeaderMismatch(t *testing.T) {
	mem := Local(512)
	if _, err := MakeArray[int64](mem, 0, 4); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		open func() error
		what string
		msg  string
	}{
		{"wrong type", func() error { _, err := OpenArray[float64](mem, 0, 4); return err },
			"element type", "want float64, got int64"},
		{"wrong length", func() error { _, err := OpenArray[int64](mem, 0, 5); return err },
			"int64 array length", "want 5, got 4"},
		{"no header", func() error { _, err := OpenArray[int64](mem, 64, 4); return err },
			"header magic at offset 64", "got 0x0"},
		{"value over an array", func() error { _, err := OpenValue[int64](mem, 0); return err },
			"int64 array length", "want 1, got 4"},
		{"too short", func() error { _, err := OpenArray[int64](mem[:40], 0, 4); return err },
			"size", "got 40"},
	} {
		err := tc.open()
		var me *MismatchError
		if !errors.As(err, &me) || me.What != tc.what || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want a %q mismatch saying %q", tc.name, err, tc.what, tc.msg)
		}
	}
	binaryVersion := mem[4]
	mem[4] = 9
	_, err := OpenArray[int64](mem, 0, 4)
	var me *MismatchError
	if !errors.As(err, &me) || me.What != "header version" {
		t.Errorf("wrong version: %v", err)
	}
	mem[4] = binaryVersion
	for _, bad := range []func() error{
		func() error { _, err := MakeArray[int64](mem, 4, 1); return err },
		func() error { _, err := MakeArray[int64](mem, 0, 100); return err },
		func() error { _, err := MakeArray[int64](mem, 0, -1); return err },
		func() error { _, err := OpenArray[int64](mem, 4, 1); return err },
	} {
		if bad() == nil {
			t.Error("a misaligned, oversized or negative array was made")
		}
	}
}

// TestChildHeaderCheck has a child map a region and open what the parent
// made there, rightly and wrongly.
func TestChildHeaderCheck(t *testing.T) {
	const size = 4096
	r := newRegion(t, size)
	a, err := MakeArray[int64](r.Bytes(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MakeBytes(r.Bytes(), 1024, 100); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"4096", "int64", "0", "10"}, "ok"},
		{[]string{"4096", "bytes", "1024", "100"}, "ok"},
		{[]string{"4096", "float64", "0", "10"}, "shared region element type mismatch: want float64, got int64"},
		{[]string{"4096", "int64", "0", "12"}, "shared region int64 array length mismatch: want 12, got 10"},
		{[]string{"4096", "int64", "512", "10"}, "shared region header magic at offset 512 mismatch"},
		{[]string{"8192", "int64", "0", "10"}, "shared region size mismatch: want 8192, got 4096"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		c := procs.Command(ctx, roleOpen, tc.args...)
		c.ExtraFiles = []*os.File{nil, r.File()}
		var out bytes.Buffer
		c.Stdout = &out
		err := c.Run()
		cancel()
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: child said %q, want %q", tc.args, out.String(), tc.want)
		}
	}
	if got := a.Load(0); got != 1 {
		t.Errorf("the one child that opened the array added %d, want 1", got)
	}
}
