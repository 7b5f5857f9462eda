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
// than the bytes left in the frame makes it a bad frame, so what decoding
// allocates stays proportional to the frame's size. A Conn reuses its encoder, decoder and buffers, so
// sending and receiving small messages does not allocate per message beyond
// what msgpack itself needs for the values. (One such cost to know: msgpack
// v5 decodes an as_array struct by first trying to read a map header, and
// the failed try allocates an error, once per struct. A hot message type can
// implement msgpack.CustomDecoder to avoid it.)
//
// Sockets come from [Pair], whose second end is handed to a child process
// as an inherited file (procs.Cmd.ExtraFiles) and opened there with
// [FileConn], or from [Listen] and [Dial] on a path inside a private
// directory (0700) with the socket itself 0600.
//
// # Authentication and RPC
//
// [ServerHandshake] and [ClientHandshake] (or [DialAuth] and [AcceptAuth])
// admit a peer only if it proves it holds a shared key, by an
// HMAC-SHA256 challenge and response in each direction, and, on the
// server, only if its uid (SO_PEERCRED) is allowed; until then frames are
// limited to 256 bytes. A failure is an [*AuthError] on both ends.
//
// On an authenticated connection, a [Server] runs Go functions registered
// by name (func(ctx, A) (R, error)) for a [Client], many calls at once on
// one connection, matched by request id; a failure arrives as a
// [*RemoteError]. Only data crosses: msgpack values decoded strictly into
// the registered types, never code.
package ipc
