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
package ipc
