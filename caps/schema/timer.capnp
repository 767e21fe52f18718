@0xc5e0ec87e9d2d0ca;

# Monotonic time since the nucleus started.
interface Timer {
  now @0 () -> (nanos :UInt64);
  # Nanoseconds since nucleus entry.

  sleep @1 (nanos :UInt64) -> ();
  # Completes no sooner than `nanos` nanoseconds after the call is consumed.
}
