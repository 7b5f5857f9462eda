package shm_test

import (
	"context"
	"fmt"

	"ipcplay/shm"
)

// A ring in a region: here the producer and consumer are one process; a
// child would map the region's file (Region.File, passed at procs.FDShm)
// and call OpenRing at the same offset.
func ExampleRing() {
	cfg := shm.RingConfig{Mode: shm.SPSC, Slots: 8, MaxMessage: 32}
	size, err := shm.RingSize(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	reg, err := shm.New("example-ring", size)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close()
	ring, err := shm.MakeRing(reg.Bytes(), 0, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	p, err := ring.Producer(shm.RingOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := p.SendBatch(ctx, [][]byte{[]byte("hello"), []byte("ring")}); err != nil {
		fmt.Println(err)
		return
	}
	p.Close()

	c, err := ring.Consumer(shm.RingOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	for {
		_, err := c.RecvBatch(ctx, 16, func(msg []byte) { fmt.Printf("%s\n", msg) })
		if err != nil {
			fmt.Println(err) // io.EOF: the producer closed and the ring is empty
			break
		}
	}
	fmt.Printf("%+v\n", ring.Stats())
	// Output:
	// hello
	// ring
	// EOF
	// {LostByProducers:0 LostByConsumers:0 DeadProducers:0 DeadConsumers:0 Producers:0 Consumers:1}
}
