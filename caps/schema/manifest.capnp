@0xe70cf720160a4a9c;

# The boot manifest: what an appliance runs. The host tool (`appliance
# build`) writes it from the appliance's CUE definition; the nucleus reads
# it from the boot module named "manifest" and checks all of it before it
# starts anything.
struct SystemManifest {
  name @0 :Text;
  # The appliance: lowercase letters, digits and '-'.

  console @1 :Console;
  enum Console {
    both @0;
    serial @1;
    framebuffer @2;
  }

  guests @2 :List(Guest);
  # Started in this order.

  devices @3 :Devices;
  struct Devices {
    network @0 :Bool;
    obsoleteDisk @1 :Bool;
    # Ignored: the appliance's volumes bring up the disks they need.
  }

  volumes @4 :List(Volume);
  # Persistent volumes, each a virtio-blk disk whose serial is the
  # volume's name (scripts/run-qemu attaches them so).
  struct Volume {
    name @0 :Text;
    # Lowercase letters, digits, '-' and '_'; unique in the manifest.
    sizeMib @1 :UInt32;
    # One of the sizes fsd formats: 1, 2, 4, ... 1024.
  }
}

struct Guest {
  name @0 :Text;
  # Unique in the manifest: lowercase letters, digits, '-' and '_'.

  module @1 :Text;
  # The boot module holding the guest's ELF (a Go guest runs in the `wasm`
  # guest, its program a data module).

  args @2 :List(Text);

  grants @3 :List(Grant);
  # Services the guest may call besides its own GuestControl, which every
  # guest holds.

  data @4 :List(Text);
  # Boot modules mapped read-only into the guest, in this order.

  heapMib @5 :UInt32;
  stackKib @6 :UInt32;
  # 0: the nucleus's default.

  cpuMs @7 :UInt64;
  # CPU-time limit; 0: none.

  restart @8 :Restart;
  maxRestarts @9 :UInt32;
  enum Restart {
    never @0;
    onFailure @1;
    # Started again (up to maxRestarts times) when it exits with a code
    # other than 0 or is stopped for a fault or a limit.
  }

  serves @10 :List(Text);
  # Endpoint names this guest may serve (GuestControl.serve); no other
  # guest of the manifest may serve them, so a name stays its own while it
  # restarts.

  connects @11 :List(Text);
  # Endpoint names this guest may connect to (GuestControl.connect).

  listen @12 :List(UInt16);
  # TCP ports this guest may listen on (Network.listen); no other guest of
  # the manifest may list them. Needs the network grant.

  mounts @13 :List(Mount);
  # Volumes this guest sees, each as a Directory capability (StartInfo
  # lists them). Several guests may mount one volume.
  struct Mount {
    path @0 :Text;
    # Where the guest sees it: absolute, e.g. "/data"; unique per guest.
    volume @1 :Text;
    readOnly @2 :Bool;
  }

  cpus @14 :List(UInt8);
  # The CPUs (by index, 0 the boot CPU) the guest may run on; empty: any.
}

enum Grant {
  console @0;
  timer @1;
  entropy @2;
  bootInfo @3;
  network @4;
  # Needs the appliance's network device.
}
