@0xfb0d35cc32a82842;

# What the nucleus knows about the machine it booted on.
interface BootInfo {
  get @0 () -> (info :Info);

  struct Info {
    bootNanos @0 :UInt64;         # from nucleus entry to ready
    memoryTotalBytes @1 :UInt64;  # usable RAM the nucleus manages
    memoryFreeBytes @2 :UInt64;   # of which free when asked
    cpuCount @3 :UInt32;          # CPUs the firmware reports
    tscHz @4 :UInt64;             # time-stamp counter frequency
    features @5 :List(Text);      # CPU and platform features, e.g. "pku", "x2apic"
  }
}
