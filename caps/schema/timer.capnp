@0xc5e0ec87e9d2d0ca;

# Time: monotonic since the nucleus started, and the wall clock.
interface Timer {
  now @0 () -> (nanos :UInt64);
  # Nanoseconds since nucleus entry.

  sleep @1 (nanos :UInt64) -> ();
  # Completes no sooner than `nanos` nanoseconds after the call is consumed.

  realtime @2 () -> (nanos :UInt64);
  # Nanoseconds since 1970-01-01 UTC: the firmware's clock read at boot,
  # advanced by the TSC since. Exception unimplemented if the firmware gave
  # no time.
}
