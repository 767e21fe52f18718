@0xca321652066baac9;

# The serving end of an endpoint, as GuestControl.serve returns it. RECV on
# it takes the next call, RETURN answers one; CALL reaches these methods,
# which the nucleus implements.
interface Endpoint {
  mint @0 (badge :UInt64, rights :UInt16) -> ();
  # A new calling end of this endpoint: the results carry it (one
  # capability). Every call through it reaches this server with `badge` in
  # the RECV completion, so the server can tell its clients apart. Its
  # rights are `rights` (bit 0 transfer, bit 1 call), never more than a
  # calling end from GuestControl.connect has.
}
