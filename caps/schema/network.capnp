@0xc3ec71e8331ab62e;

# The network, for a guest the appliance grants it (`grants: ["network"]`),
# and the sockets it makes. Every socket is a capability of its own, held
# only by the guest that made it (it has no transfer right); releasing it,
# or the guest's exit, closes the socket, and every later call through it
# answers `stale capability`.
#
# IPv4 addresses are UInt32s: a.b.c.d is (a << 24) | (b << 16) | (c << 8) | d.
# Calls that wait (`wait` true, `poll`) complete when the network has made
# progress; the guest's other calls go on meanwhile.

interface Network {
  info @0 () -> (info :Addressing);
  # The interface's addressing now (DHCP may not have answered yet: then
  # the address is 0).

  listen @1 (port :UInt16) -> ();
  # A TcpListener on `port`: the results carry it (one capability).
  # Exception denied unless the appliance lists the port in the guest's
  # `listen`; invalidArgument if another listener has it.

  connect @2 (address :UInt32, port :UInt16) -> ();
  # A TcpStream to address:port (one capability), connecting in the
  # background: reads and writes wait until it is established, and fail
  # with exception disconnected if it is refused.

  bindUdp @3 (port :UInt16) -> ();
  # A UdpSocket on `port` (0: an ephemeral one), one capability.

  poll @4 (interests :List(Interest), timeoutNanos :UInt64) -> (ready :List(Readiness));
  # Waits until a socket named in `interests` is ready as asked, or for
  # `timeoutNanos` (0: do not wait; the largest UInt64: no limit); then says,
  # for every interest in order, what is ready. Empty `ready` means the time
  # ran out first. Sockets are named by capability ids in the caller's own
  # table.

  struct Addressing {
    mac @0 :Data;
    address @1 :UInt32;
    prefixLength @2 :UInt8;
    gateway @3 :UInt32;
    dns @4 :List(UInt32);
  }

  struct Interest {
    socket @0 :UInt32;
    read @1 :Bool;
    write @2 :Bool;
  }

  struct Readiness {
    read @0 :Bool;
    # Readable: bytes or the end of the stream, a connection to accept, a
    # datagram, or an error to report.
    write @1 :Bool;
    # Writable: room in the send buffer, or an error to report.
  }
}

interface TcpListener {
  accept @0 (wait :Bool) -> ();
  # The next connection, a TcpStream (one capability in the results). With
  # `wait` false and no connection pending, the results carry none.

  port @1 () -> (port :UInt16);
}

interface TcpStream {
  read @0 (max :UInt32, wait :Bool) -> (data :Data, end :Bool);
  # Up to `max` bytes. With `wait`, completes once there is at least one
  # byte or the stream has ended; without, answers at once (empty data
  # when nothing has arrived). `end`: the peer closed and all was read.

  write @1 (data :Data, wait :Bool) -> (written :UInt32);
  # Queues what fits of `data`. With `wait`, completes once at least one
  # byte is queued; without, `written` may be 0. Exception disconnected
  # when the connection is closed for writing.

  shutdown @2 () -> ();
  # No more writes: the peer reads the end of the stream once all queued
  # bytes have gone.

  endpoints @3 () -> (localAddress :UInt32, localPort :UInt16, remoteAddress :UInt32, remotePort :UInt16);
}

interface UdpSocket {
  sendTo @0 (address :UInt32, port :UInt16, data :Data) -> ();
  # One datagram; exception overloaded when the send buffer is full.

  recvFrom @1 (max :UInt32, wait :Bool) -> (data :Data, address :UInt32, port :UInt16, received :Bool);
  # The next datagram, cut to `max` bytes. Without `wait` and none there,
  # `received` is false.
}
