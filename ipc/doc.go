// Package ipc carries msgpack messages between processes over Unix sockets.
//
// A [Conn] sends and receives values encoded with
// github.com/vmihailenco/msgpack/v5, grouped in frames. On a stream socket
// (network "unix") a frame is a 4-byte big-endian length followed by that
// many bytes; on a SOCK_SEQPACKET socket ("unixpacket") a frame is one
// datagram, and the kernel keeps the boundaries. A frame holds one or more
// msgpack values back to back (msgpack values delimit themselves), which is
// how batching works: [Conn.Buffer] adds a value to the frame being built
// and [Conn.Flush] writes it with one system call; [Conn.Send] does both.
//
// Every frame is at most MaxFrame bytes (16 MiB unless set): a longer
// length, or a frame cut short by the peer, is an error, never a large
// allocation or a panic. Before any value of a frame is decoded, the frame's
// msgpack structure is checked: a string, array or map that claims more
// than the bytes left in the frame, or arrays and maps nested more than
// MaxDepth deep, make it a bad frame, so what decoding allocates stays
// proportional to the frame's size and its recursion stays shallow (the
// decoder recurses once per level: 2 MB of nested arrays would otherwise
// overflow the receiver's stack, which kills the process).
//
// A peer that stops in the middle of a frame fails the receive after the
// frame timeout (30 s unless set with [Conn.SetFrameTimeout]) with an
// [ErrFrameIdle] error; silence between frames is bounded only by the
// caller's context ([Conn.RecvContext]). A receive whose context ends in
// the middle of a frame keeps what it read, and the next one goes on from
// there. A frame that leaves a stream out of step (over the maximum, cut
// short, idle) breaks the Conn for receiving, and a send cut short in the
// middle of a frame breaks it for sending: every later call returns the
// error. Concurrent [Conn.SendContext] (or RecvContext) calls each keep to
// their own context, also while they wait for one another. A Conn reuses its encoder, decoder and buffers, so
// sending and receiving small messages does not allocate per message beyond
// what msgpack itself needs for the values. (One such cost to know: msgpack
// v5 decodes an as_array struct by first trying to read a map header, and
// the failed try allocates an error, once per struct. A hot message type can
// implement msgpack.CustomDecoder to avoid it.)
//
// Sockets come from [Pair], whose second end is handed to a child process
// as an inherited file (procs.Cmd.ExtraFiles) and opened there with
// [FileConn], or from [Listen] and [Dial] on a path inside a private
// directory (0700) with the socket itself 0600. [ListenReplace] also
// replaces the socket file a killed server left behind, and refuses with
// [ErrServerRunning] if a server still listens there.
//
// # Authentication and RPC
//
// [ServerHandshake] and [ClientHandshake] (or [DialAuth] and [AcceptAuth])
// admit a peer only if it proves it holds a shared key, by an
// HMAC-SHA256 challenge and response in each direction, and, on the
// server, only if its uid (SO_PEERCRED) is allowed; until then frames are
// limited to 256 bytes. A failure is an [*AuthError] on both ends; a
// server that runs out of time tells the client so before it hangs up.
//
// On an authenticated connection, a [Server] runs Go functions registered
// by name (func(ctx, A) (R, error)) for a [Client], many calls at once on
// one connection, matched by request id; a failure arrives as a
// [*RemoteError]. Both ends read every frame under the frame timeout
// ([ServerConfig.FrameTimeout] on the server), and [Client.Call] returns
// when its context ends, even with its response half read. Only data crosses: msgpack values decoded strictly into
// the registered types, never code.
//
// # Queue
//
// A [Queue] is a bounded, joinable FIFO of values shared by processes,
// like Python's multiprocessing.JoinableQueue. The process that calls
// [NewQueue] runs its hub: the buffer of at most capacity values, and two
// goroutines per endpoint. [Queue.Attach] makes an endpoint as a socket
// file for a child, which opens it with [OpenQueue]; [Queue.Client] makes
// one for the owner itself. A [QueueClient] puts and gets msgpack-encoded
// values ([QueueClient.Put], [QueueClient.Get]) or raw bytes
// ([QueueClient.PutBytes], [QueueClient.GetBytes]: no reflection, and no
// allocation per value once buffers have grown), or runs of raw values
// ([QueueClient.PutBatch], [QueueClient.GetBatch]: the fast path, one lock
// per run instead of one per value).
// [QueueOptions], fixed at open, choose between one round trip per call
// (the default) and windows of values in flight.
//
// Values travel as records in frames (queue_wire_linux.go): a producer's
// writer goroutine sends whatever Puts have gathered, many values per
// write(2), without waiting to fill a batch, so a lone value goes at once.
// The hub stores and forwards runs of records without decoding them.
//
// Flow control is by credits, granted in bulk. The hub takes a put only
// when the buffer has room (or an endpoint asked for a value and the
// buffer is empty), and acknowledges it then: a producer has at most
// PutWindow values unacknowledged, so it stops when the buffer is full,
// whatever the socket buffers hold. A consumer asks for up to GetWindow
// values at once (again when half are used); the hub sends values only
// against such asks, in the order they were made.
//
// Guarantees: every value put and acknowledged is delivered to exactly one
// Get, unless the process that got it dies; each consumer gets each
// producer's values in the order they were put (one exception: values a
// prefetching consumer gives back on Close go to the front of the queue,
// so another consumer may get them after later values of the same
// producer); after [Queue.Close], puts
// fail with [ErrQueueClosed] and Gets return what is left, then io.EOF;
// [QueueClient.Join] returns once every value put has been marked done
// with [QueueClient.TaskDone].
//
// Close against Shutdown: [Queue.Close] stops puts and lets consumers
// drain; [Queue.Shutdown] hangs up on every endpoint at once (their calls
// fail with [ErrQueueGone]) and drops what is buffered.
//
// Who owns what: a value is the hub's until the hub hands it to an
// endpoint that asked; values fetched ahead (GetWindow) belong to that
// endpoint. [QueueClient.Close] gives back those it has not taken, to the
// front of the queue. An endpoint whose process dies without Close is
// dropped: its waiting puts are discarded (their Put never returned, or,
// with a window, were never acknowledged), and the values handed to it
// are lost with it. The hub counts them in QueueStats.Stranded, and counts
// them as done for Join (less the TaskDones that endpoint sent), since no
// one can mark them done any more. A stuck endpoint (stopped, or not
// reading) holds up only itself: replies to it are written by its own
// goroutine. The hub's memory is bounded by capacity plus what endpoints
// have in flight: puts waiting for room (at most MaxQueueWindow values per
// endpoint), values asked for and not yet read by the endpoint, and 1 MiB
// of other replies, beyond which the hub stops reading that endpoint. A
// peer that breaks the protocol (a malformed frame, a give-back of values
// it was not handed, more puts or Joins waiting than allowed) is dropped.
//
// # Queue lanes
//
// With [Queue.EnableLanes] (off by default), values may skip the hub: a
// lane is a socket pair between one producer and one consumer, made by the
// hub and passed to both over their hub sockets (SCM_RIGHTS). A value on a
// lane crosses one socket instead of two. The hub stays the authority: it
// opens and ends lanes, gives the producer credit only out of that
// consumer's asks (so capacity and backpressure hold), counts lane values
// as put (Join) and as handed to the consumer (Stranded if it dies),
// acknowledges them to the producer (Flush), and sends EOF only after every
// lane is closed. Topology: a lane is asked for only by a producer with a
// PutWindow that has at least 256 puts in flight (a lone value never
// waits), and opened to the first consumer asking (or, if none asks, any
// consumer with a GetWindow and no lane); each producer writes at most
// one lane and each consumer reads at most one open lane at a time; every
// other value is relayed. Per-producer order holds: a producer sends no
// put to the hub between its ask and the answer, the hub delegates asks
// only while its buffer is empty, and a consumer takes nothing that
// follows a lane's end in its hub stream before it has read that lane to
// its end. A lane producer's Put counts as taken when written to the lane,
// so puts it wrote before it learned of Close are delivered, not refused.
// The hub ends a lane on Close, on its consumer's revoke or death, when
// another consumer starves, when values wait in its buffer that nobody
// asks for (the lane's producer may be idle, holding the consumer's asks),
// and when its producer's Put or Flush has waited a second with values
// and no credit while nobody asks. The full protocol is in
// queue_lane_linux.go.
// [QueueStats] counts values relayed and on lanes.
package ipc
