package shm

import (
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A waiter finds a dead owner by looking once per wait slice, so on its
// own it learns of a death up to a slice late. A deathWatch cuts that
// short: it holds a pidfd (pidfd_open(2)) of a live owner, which becomes
// readable when that process exits, and then wakes the futex word the
// waiter sleeps on. Go's poller waits for the pidfd, so a watch costs no
// thread; Close of the pidfd ends the wait.

// maxWatches bounds the processes one waiter watches at once.
const maxWatches = 8

// watchSet is one waiter's watches, all waking the same futex word.
type watchSet struct {
	word    *atomic.Uint32
	fired   atomic.Bool
	watches map[ident]*deathWatch
}

type deathWatch struct {
	f    *os.File
	done chan struct{}
}

func newWatchSet(word *atomic.Uint32) *watchSet { return &watchSet{word: word} }

// watch starts watching id, a process that was just found alive, unless
// it is watched already, too many are, or pidfd_open is not available
// (then the waiter still finds the death by looking).
func (s *watchSet) watch(id ident) {
	if s.watches[id] != nil || len(s.watches) >= maxWatches {
		return
	}
	fd, err := unix.PidfdOpen(int(id.pid()), unix.PIDFD_NONBLOCK)
	if err != nil {
		return
	}
	// The pidfd names whatever process had the pid when it was opened:
	// check that this is still the one the lock names, by its start time.
	if id.start() == 0 || lifeOf(id.pid(), id.start()) != lifeAlive {
		unix.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return
	}
	w := &deathWatch{f: f, done: make(chan struct{})}
	if s.watches == nil {
		s.watches = make(map[ident]*deathWatch)
	}
	s.watches[id] = w
	go func() {
		defer close(w.done)
		exited := false
		// Read waits for the pidfd to be readable, that is for the
		// process to exit, and returns early when stop closes it.
		rc.Read(func(fd uintptr) bool {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(p, 0)
			exited = n > 0
			return exited
		})
		if exited {
			s.fired.Store(true)
			futexWakeWord(s.word, wakeAll)
		}
	}()
}

// died reports, once, that a watched process exited since the last call.
func (s *watchSet) died() bool { return s.fired.Load() && s.fired.Swap(false) }

// stop ends every watch and waits for their goroutines.
func (s *watchSet) stop() {
	for id, w := range s.watches {
		w.f.Close()
		<-w.done
		delete(s.watches, id)
	}
}
