@0xc198ccf64cb8280f;

# Random bytes from the CPU's hardware generator, suitable for keys.
interface Entropy {
  fill @0 (length :UInt32) -> (bytes :Data);
  # Exactly `length` random bytes. The results buffer must hold them.
}
