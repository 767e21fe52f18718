@0xa94130b4b642b702;

# Served by guests, for tests of capabilities that name objects: a server
# that hands each client a capability of its own and tells its callers
# apart by badge.
interface Sessions {
  open @0 (rights :UInt16) -> ();
  # A new capability to this server with a badge of its own and `rights`
  # (Endpoint.mint's); the results carry it.

  whoami @1 () -> (badge :UInt64);
  # The badge of the capability this call came through.

  give @2 () -> (badge :UInt64);
  # The params carry one Sessions capability; the server keeps it, calls
  # whoami through it and answers the badge it was told.

  probe @3 () -> (result :Int32);
  # Calls whoami through the capability `give` left: 0 if that worked,
  # else the transport error code it got.

  stop @4 (code :Int32) -> ();
  # Answers, then the server exits with `code`.
}
