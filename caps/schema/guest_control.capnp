@0xcb159df328792b61;

# A guest's handle on itself.
interface GuestControl {
  exit @0 (code :Int32) -> ();
  # Stops the calling guest; no completion is posted for this call.

  region @1 () -> (base :UInt64, size :UInt64);
  # The guest's own memory region: the range its buffers must lie in.

  serve @2 (name :Text) -> ();
  # Offers an interface to other guests under `name`, which the appliance
  # must list in this guest's `serves`. The results carry one capability:
  # the endpoint's serving end (interface Endpoint). Exception denied if the
  # appliance does not grant the name, invalidArgument if this guest serves
  # it already.

  connect @3 (name :Text) -> ();
  # A calling end of what another guest serves under `name`, which the
  # appliance must list in this guest's `connects`: the results carry it.
  # Exception denied if the name is not granted; disconnected if nothing is
  # served under it now (its server has not started or is restarting): try
  # again later.

  startInfo @4 () -> (args :List(Text), data :List(DataRegion), mounts :List(Mount));
  # The guest's arguments (from its module line, `arg=`) and the read-only
  # data regions the nucleus mapped into its slot (`data=`): each with the
  # name it was given, where it starts and how many bytes it holds; and the
  # volumes mounted for it: where (its `mounts` path), and the Directory
  # capability (an id in its table) for the volume's root.

  struct Mount {
    path @0 :Text;
    directory @1 :UInt32;
    writable @2 :Bool;
  }

  struct DataRegion {
    name @0 :Text;
    base @1 :UInt64;
    size @2 :UInt64;
  }
}
