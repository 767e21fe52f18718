@0xac36f712957e9cd4;

# What a service sends instead of its results when a call fails for a reason
# of its own. The CQE then has flag bit 0 (EXCEPTION) set and `result` is the
# length of this message in the results buffer.
struct Exception {
  code @0 :UInt32;
  # One of:
  #   1 failed          the service could not do it; `message` says why
  #   2 overloaded      out of a resource for now; the same call may work later
  #   3 disconnected    the object behind the capability is gone (its guest exited)
  #   4 unimplemented   the method is in the schema but this service lacks it
  #   5 invalidArgument the params decoded, but their values are refused
  # 0 is never sent. Receivers treat a code they do not know as 1 (failed).

  message @1 :Text;
  # For people, not programs. May be empty; may be cut short to fit.

  detail @2 :UInt16;
  # What went wrong in the interface's own terms, for programs (0: nothing
  # more to say). Directory and File send a FileError (storage.capnp).
}
