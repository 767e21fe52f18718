@0xcfdaca235fe7b0e3;

# Files on the appliance's volumes. A guest is given a Directory for each of
# its mounts (StartInfo lists them); every path it names is relative to that
# directory and never leads out of it (absolute paths and `..` are refused
# with exception invalidArgument, detail `escapes`). Opening mints a File
# or a sub-Directory capability with at most the rights of the directory it
# came from: a read-only mount's capabilities lack `write`, and every
# method that changes the volume then answers `missing right`.
#
# A call that changes the volume is durable when it returns. Failures are
# exceptions whose `detail` is a FileError:
#   1 notFound  2 exists  3 notDirectory  4 isDirectory  5 notEmpty
#   6 noSpace   7 tooLarge  8 nameTooLong  9 escapes  10 invalid
#   11 readOnly  12 corrupt  13 io
#
# A File names a path, not an inode: renaming or removing the file under
# it makes its later calls answer notFound (or reach what took its place).

interface Directory {
  open @0 (path :Text, create :Bool, exclusive :Bool, truncate :Bool, directory :Bool) -> (metadata :Metadata);
  # What `path` names, as a capability in the results: a File, or with
  # `directory` (or when it names one) a Directory. `create` makes a file
  # that is not there (with `exclusive`: fails if it is); `truncate` cuts
  # it to nothing. `directory` with `create` is refused (use mkdir).

  mkdir @1 (path :Text) -> ();
  remove @2 (path :Text) -> ();
  # A file, or a directory that is empty.

  rename @3 (from :Text, toDirectory :UInt32, to :Text) -> ();
  # Moves `from` (in this directory) to `to` in `toDirectory` (a Directory
  # capability's id in the caller's table on the same volume; 0: this one),
  # in one step: a file already at `to` is replaced.

  list @4 (skip :UInt64, max :UInt32) -> (entries :List(Entry));
  # Up to `max` entries after the first `skip`, in the volume's order;
  # fewer than `max` means the end.

  stat @5 (path :Text) -> (metadata :Metadata);
  # `path` "" or "." is the directory itself.

  info @6 () -> (sizeBytes :UInt64, freeBytes :UInt64, writable :Bool);

  struct Metadata {
    directory @0 :Bool;
    size @1 :UInt64;
  }

  struct Entry {
    name @0 :Text;
    metadata @1 :Metadata;
  }
}

interface File {
  readAt @0 (offset :UInt64, max :UInt32) -> (data :Data);
  # Up to `max` bytes from `offset`; fewer at the end of the file, none
  # past it.

  writeAt @1 (offset :UInt64, data :Data) -> ();
  # A gap before `offset` reads as zeros. tooLarge past 2^31 - 1 bytes.

  append @2 (data :Data) -> (size :UInt64);
  # Writes at the end; the size after.

  size @3 () -> (size :UInt64);
  truncate @4 (size :UInt64) -> ();
  # Cuts the file, or extends it with zeros.

  sync @5 () -> ();
  # A barrier: everything written before it is durable (each change
  # already is when its call returns).
}
