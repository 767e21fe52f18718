@0xfae80dde3569d61d;

# Served by guests, not by the nucleus: the smallest useful guest-to-guest
# interface, for tests and for measuring guest-to-guest calls.
interface Echo {
  echo @0 (data :Data) -> (data :Data);
  # Returns the bytes it was given.
}
