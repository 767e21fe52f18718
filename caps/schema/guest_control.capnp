@0xcb159df328792b61;

# A guest's handle on itself.
interface GuestControl {
  exit @0 (code :Int32) -> ();
  # Stops the calling guest; no completion is posted for this call.

  region @1 () -> (base :UInt64, size :UInt64);
  # The guest's own memory region: the range its buffers must lie in.

  serve @2 (name :Text) -> ();
  # Offers an interface to other guests under `name`. The completion's aux
  # is the new endpoint capability: RECV on it takes the next call, RETURN
  # answers it. Exception invalidArgument if the name is taken or empty.

  connect @3 (name :Text) -> ();
  # A capability for calling the interface another guest serves under
  # `name` (the completion's aux). Exception disconnected if nothing is
  # served under that name (yet): try again later.
}
