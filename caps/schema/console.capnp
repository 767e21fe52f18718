@0xb92f24c22b4bdb3c;

# The appliance's console: serial port and screen.
interface Console {
  write @0 (text :Data) -> (written :UInt32);
  # Writes the bytes as they are (UTF-8 is expected, not checked) and says
  # how many were written.
}
