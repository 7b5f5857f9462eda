package ipc

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzQueueMsg feeds arbitrary bytes to the queue protocol's decoder: it
// must return an error or a message, never panic, and a message it accepts
// must encode back to something that decodes to the same message.
func FuzzQueueMsg(f *testing.F) {
	for _, m := range []queueMsg{
		{Op: opPut, Seq: 1, Data: []byte{0x93, 1, 2, 3}},
		{Op: opGet, Seq: 1 << 40},
		{Op: opItem, Seq: 7, Data: make([]byte, 300)},
	} {
		b, err := msgpack.Marshal(&m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x93, 0x01})
	f.Add([]byte{0x92, 0x01, 0x02})
	f.Add([]byte{0x93, 0x01, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if validate(b) != nil {
			return // a Conn rejects the frame before decoding it
		}
		var m queueMsg
		if err := msgpack.Unmarshal(b, &m); err != nil {
			return
		}
		again, err := msgpack.Marshal(&m)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		var m2 queueMsg
		if err := msgpack.Unmarshal(again, &m2); err != nil {
			t.Fatalf("decode re-encoded %+v: %v", m, err)
		}
		if m2.Op != m.Op || m2.Seq != m.Seq || string(m2.Data) != string(m.Data) {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}
