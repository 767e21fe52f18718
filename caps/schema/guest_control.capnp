@0xcb159df328792b61;

# A guest's handle on itself.
interface GuestControl {
  exit @0 (code :Int32) -> ();
  # Stops the calling guest; no completion is posted for this call.

  region @1 () -> (base :UInt64, size :UInt64);
  # The guest's own memory region: the range its buffers must lie in.
}
