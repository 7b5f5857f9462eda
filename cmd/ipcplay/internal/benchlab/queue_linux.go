package benchlab

import (
	"context"
	"errors"
	"fmt"
	"os"

	"ipcplay/ipc"
	"ipcplay/procs"
)

// queueEnd puts messages on one ipc.Queue and gets them from another. The
// hubs run in the parent, so a message goes endpoint -> hub -> endpoint:
// each Put waits for the hub's acknowledgement and each Get asks the hub
// (QueueOptions{}: one round trip per call, no windows).
type queueEnd struct {
	ctx      context.Context
	put, get *ipc.QueueClient
	buf      []byte
}

func (e *queueEnd) Send(b []byte) error {
	return e.put.PutBytes(e.ctx, b) // PutBytes copies b
}

func (e *queueEnd) Recv(b []byte) error {
	d, err := e.get.GetBytes(e.ctx, e.buf[:0])
	if err != nil {
		return err
	}
	e.buf = d
	if len(d) != len(b) {
		return errLength(len(d), len(b))
	}
	copy(b, d)
	return nil
}

func (e *queueEnd) Close() error { return errors.Join(e.put.Close(), e.get.Close()) }

// queueSetup makes two queues (parent to child, child to parent), the
// parent's clients, and the child's endpoints.
func queueSetup(ctx context.Context) (*procSetup, error) {
	var qs [2]*ipc.Queue
	shutdown := func() error {
		var err error
		for _, q := range qs {
			if q != nil {
				err = errors.Join(err, q.Shutdown())
			}
		}
		return err
	}
	for i := range qs {
		q, err := ipc.NewQueue(64)
		if err != nil {
			return nil, errors.Join(err, shutdown())
		}
		qs[i] = q
	}
	put, err := qs[0].Client(ipc.QueueOptions{})
	if err != nil {
		return nil, errors.Join(err, shutdown())
	}
	get, err := qs[1].Client(ipc.QueueOptions{})
	if err != nil {
		return nil, errors.Join(err, put.Close(), shutdown())
	}
	e := &queueEnd{ctx: ctx, put: put, get: get}
	childGet, err := qs[0].Attach()
	if err != nil {
		return nil, errors.Join(err, e.Close(), shutdown())
	}
	childPut, err := qs[1].Attach()
	if err != nil {
		return nil, errors.Join(err, e.Close(), childGet.Close(), shutdown())
	}
	return &procSetup{end: e, child: []*os.File{childGet, childPut}, cleanup: shutdown}, nil
}

// queueChild opens the child's two queue endpoints.
func queueChild(ctx context.Context) (End, error) {
	var cs [2]*ipc.QueueClient
	for i := range cs {
		f, err := procs.ChildFile(procs.FDExtra+i, procs.Socket, fmt.Sprintf("queue %d", i))
		if err != nil {
			return nil, err
		}
		c, err := ipc.OpenQueue(f, ipc.QueueOptions{})
		if err != nil {
			f.Close()
			if i == 1 {
				cs[0].Close()
			}
			return nil, err
		}
		cs[i] = c
	}
	return &queueEnd{ctx: ctx, get: cs[0], put: cs[1]}, nil
}
