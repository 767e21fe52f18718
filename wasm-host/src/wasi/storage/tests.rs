//! The WASI calls on directories a System holds, without wasm: an
//! in-memory System (a [`MemoryVolume`], which follows storage.capnp and
//! can be told to fail), driven through guest memory.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::abi::{fdflags, filetype, oflags, rights, whence};
use crate::errno::Errno;
use crate::memory::GuestMemory;
use crate::system::{
    Clock, DirEntry, DirectoryHandle, FileHandle, MAX_FILE_IO, Metadata, OpenOptions, Opened,
    Stream, System,
};
use crate::volume::{MAX_FILE_BYTES, MemoryVolume};
use crate::wasi::Wasi;

/// A System whose directories are a [`MemoryVolume`]; it records the
/// directory a rename was sent to and can fail the next file call.
#[derive(Default)]
struct Disk {
    volume: MemoryVolume,
    renamed_into: Vec<DirectoryHandle>,
    fail_next: Option<Errno>,
}

impl Disk {
    fn failing(&mut self) -> Result<(), Errno> {
        self.fail_next.take().map_or(Ok(()), Err)
    }
}

impl System for Disk {
    fn write_console(&mut self, _stream: Stream, _bytes: &[u8]) -> Result<(), Errno> {
        Ok(())
    }

    fn now_nanos(&mut self, _clock: Clock) -> u64 {
        0
    }

    fn sleep_nanos(&mut self, _nanos: u64) {}

    fn random(&mut self, out: &mut [u8]) -> Result<(), Errno> {
        out.fill(1);
        Ok(())
    }

    fn open(
        &mut self,
        dir: DirectoryHandle,
        path: &str,
        options: OpenOptions,
    ) -> Result<Opened, Errno> {
        self.failing()?;
        self.volume.open(dir, path, options)
    }

    fn mkdir(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        self.failing()?;
        self.volume.mkdir(dir, path)
    }

    fn remove(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        self.failing()?;
        self.volume.remove(dir, path)
    }

    fn rename(
        &mut self,
        dir: DirectoryHandle,
        from: &str,
        to_dir: DirectoryHandle,
        to: &str,
    ) -> Result<(), Errno> {
        self.failing()?;
        self.renamed_into.push(to_dir);
        self.volume.rename(dir, from, to_dir, to)
    }

    fn list(&mut self, dir: DirectoryHandle, skip: u64, max: u32) -> Result<Vec<DirEntry>, Errno> {
        self.failing()?;
        self.volume.list(dir, skip, max)
    }

    fn stat(&mut self, dir: DirectoryHandle, path: &str) -> Result<Metadata, Errno> {
        self.failing()?;
        self.volume.stat(dir, path)
    }

    fn read_at(&mut self, file: FileHandle, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        self.failing()?;
        self.volume.read_at(file, offset, buf)
    }

    fn write_at(&mut self, file: FileHandle, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        self.failing()?;
        self.volume.write_at(file, offset, bytes)
    }

    fn append(&mut self, file: FileHandle, bytes: &[u8]) -> Result<u64, Errno> {
        self.failing()?;
        self.volume.append(file, bytes)
    }

    fn file_size(&mut self, file: FileHandle) -> Result<u64, Errno> {
        self.failing()?;
        self.volume.file_size(file)
    }

    fn truncate(&mut self, file: FileHandle, size: u64) -> Result<(), Errno> {
        self.failing()?;
        self.volume.truncate(file, size)
    }

    fn sync_file(&mut self, file: FileHandle) -> Result<(), Errno> {
        self.failing()?;
        self.volume.sync_file(file)
    }

    fn close_file(&mut self, file: FileHandle) {
        self.volume.close_file(file);
    }

    fn close_directory(&mut self, dir: DirectoryHandle) {
        self.volume.close_directory(dir);
    }
}

/// Where things go in the guest memory of these tests.
const PATH: u32 = 0x100;
const OTHER_PATH: u32 = 0x1100;
const IOVEC: u32 = 0x2000;
const RESULT: u32 = 0x2100;
const DATA: u32 = 0x10000;
const MEMORY: usize = 0x80000;

/// Go's rights for `O_RDWR` (`fileRights`), and what it asks a directory to
/// hand on.
const READ_WRITE: u64 = rights::ALL & !(rights::SOCK_SHUTDOWN | rights::SOCK_ACCEPT);
const READ_ONLY: u64 = READ_WRITE & !(rights::FD_WRITE | rights::FD_DATASYNC);
const WRITE_ONLY: u64 = READ_WRITE & !(rights::FD_READ | rights::FD_READDIR);

/// An instance with "/data" (fd 3) on a volume, and its memory.
struct Harness {
    wasi: Wasi<Disk>,
    memory: Vec<u8>,
}

impl Harness {
    fn new(volume: MemoryVolume, writable: bool) -> Harness {
        let mut disk = Disk {
            volume,
            ..Disk::default()
        };
        let root = disk.volume.root();
        let wasi = Wasi::builder(disk)
            .preopen_directory("/data", root, writable)
            .build()
            .unwrap();
        Harness {
            wasi,
            memory: vec![0; MEMORY],
        }
    }

    fn writable() -> Harness {
        Harness::new(MemoryVolume::new(), true)
    }

    fn volume(&self) -> &MemoryVolume {
        &self.wasi.system().volume
    }

    fn put_path(&mut self, at: u32, path: &str) -> u32 {
        let at = at as usize;
        self.memory[at..at + path.len()].copy_from_slice(path.as_bytes());
        path.len() as u32
    }

    fn open_in(
        &mut self,
        dir: u32,
        path: &str,
        open_flags: u16,
        rights: u64,
        fd_flags: u16,
    ) -> Result<u32, Errno> {
        let len = self.put_path(PATH, path);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.path_open(
            &mut memory,
            dir,
            1,
            PATH,
            len,
            u32::from(open_flags),
            rights,
            READ_WRITE,
            u32::from(fd_flags),
            RESULT,
        )?;
        memory.read_u32(RESULT)
    }

    fn open(&mut self, path: &str, open_flags: u16, rights: u64) -> Result<u32, Errno> {
        self.open_in(3, path, open_flags, rights, 0)
    }

    fn create(&mut self, path: &str) -> u32 {
        self.open(path, oflags::CREAT | oflags::TRUNC, READ_WRITE)
            .unwrap_or_else(|errno| panic!("creating {path}: {errno}"))
    }

    /// One iovec of `len` bytes at DATA.
    fn iovec(&mut self, len: u32) {
        let mut memory = GuestMemory::new(&mut self.memory);
        memory.write_u32(IOVEC, DATA).unwrap();
        memory.write_u32(IOVEC + 4, len).unwrap();
    }

    fn write(&mut self, fd: u32, bytes: &[u8]) -> Result<u32, Errno> {
        self.memory[DATA as usize..DATA as usize + bytes.len()].copy_from_slice(bytes);
        self.iovec(bytes.len() as u32);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.fd_write(&mut memory, fd, IOVEC, 1, RESULT)?;
        memory.read_u32(RESULT)
    }

    fn pwrite(&mut self, fd: u32, bytes: &[u8], offset: u64) -> Result<u32, Errno> {
        self.memory[DATA as usize..DATA as usize + bytes.len()].copy_from_slice(bytes);
        self.iovec(bytes.len() as u32);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi
            .fd_pwrite(&mut memory, fd, IOVEC, 1, offset, RESULT)?;
        memory.read_u32(RESULT)
    }

    fn read(&mut self, fd: u32, max: u32) -> Result<Vec<u8>, Errno> {
        self.iovec(max);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.fd_read(&mut memory, fd, IOVEC, 1, RESULT)?;
        let read = memory.read_u32(RESULT)?;
        Ok(memory.slice(DATA, read)?.to_vec())
    }

    fn pread(&mut self, fd: u32, max: u32, offset: u64) -> Result<Vec<u8>, Errno> {
        self.iovec(max);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi
            .fd_pread(&mut memory, fd, IOVEC, 1, offset, RESULT)?;
        let read = memory.read_u32(RESULT)?;
        Ok(memory.slice(DATA, read)?.to_vec())
    }

    fn seek(&mut self, fd: u32, offset: i64, from: u8) -> Result<u64, Errno> {
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi
            .fd_seek(&mut memory, fd, offset, u32::from(from), RESULT)?;
        memory.read_u64(RESULT)
    }

    fn tell(&mut self, fd: u32) -> u64 {
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.fd_tell(&mut memory, fd, RESULT).unwrap();
        memory.read_u64(RESULT).unwrap()
    }

    /// (filetype, size, ino) of `path` in fd 3.
    fn stat(&mut self, path: &str) -> Result<(u8, u64, u64), Errno> {
        let len = self.put_path(PATH, path);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi
            .path_filestat_get(&mut memory, 3, 1, PATH, len, RESULT)?;
        Ok(filestat(&memory))
    }

    fn fstat(&mut self, fd: u32) -> Result<(u8, u64, u64), Errno> {
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.fd_filestat_get(&mut memory, fd, RESULT)?;
        Ok(filestat(&memory))
    }

    fn fdflags(&mut self, fd: u32) -> (u8, u16) {
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.fd_fdstat_get(&mut memory, fd, RESULT).unwrap();
        (
            memory.read_u8(RESULT).unwrap(),
            memory.read_u16(RESULT + 2).unwrap(),
        )
    }

    fn mkdir(&mut self, path: &str) -> Result<(), Errno> {
        let len = self.put_path(PATH, path);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.path_create_directory(&mut memory, 3, PATH, len)
    }

    fn unlink(&mut self, path: &str) -> Result<(), Errno> {
        let len = self.put_path(PATH, path);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.path_unlink_file(&mut memory, 3, PATH, len)
    }

    fn rmdir(&mut self, path: &str) -> Result<(), Errno> {
        let len = self.put_path(PATH, path);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.path_remove_directory(&mut memory, 3, PATH, len)
    }

    fn rename_between(
        &mut self,
        from_dir: u32,
        from: &str,
        to_dir: u32,
        to: &str,
    ) -> Result<(), Errno> {
        let from_len = self.put_path(PATH, from);
        let to_len = self.put_path(OTHER_PATH, to);
        let mut memory = GuestMemory::new(&mut self.memory);
        self.wasi.path_rename(
            &mut memory,
            from_dir,
            PATH,
            from_len,
            to_dir,
            OTHER_PATH,
            to_len,
        )
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), Errno> {
        self.rename_between(3, from, 3, to)
    }

    /// Every entry of `fd`, read with a `buf_len`-byte buffer and the
    /// cookies as Go uses them: (name, type), and how many calls it took.
    fn read_dir(&mut self, fd: u32, buf_len: u32) -> Result<(Vec<(String, u8)>, usize), Errno> {
        let mut entries = Vec::new();
        let mut cookie = 0;
        let mut calls = 0;
        loop {
            calls += 1;
            let mut memory = GuestMemory::new(&mut self.memory);
            self.wasi
                .fd_readdir(&mut memory, fd, DATA, buf_len, cookie, RESULT)?;
            let used = memory.read_u32(RESULT)? as usize;
            if used == 0 {
                return Ok((entries, calls));
            }
            let bytes = memory.slice(DATA, used as u32)?;
            let mut at = 0;
            while at + 24 <= used {
                let next = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
                let len = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
                if at + 24 + len > used {
                    break; // cut off: read again from the last whole entry
                }
                let name = String::from_utf8(bytes[at + 24..at + 24 + len].to_vec()).unwrap();
                entries.push((name, bytes[at + 20]));
                cookie = next;
                at += 24 + len;
            }
            assert!(calls < 10_000, "readdir does not end");
        }
    }
}

fn filestat(memory: &GuestMemory) -> (u8, u64, u64) {
    (
        memory.read_u8(RESULT + 16).unwrap(),
        memory.read_u64(RESULT + 32).unwrap(),
        memory.read_u64(RESULT + 8).unwrap(),
    )
}

#[test]
fn a_system_directory_is_a_preopen_named_as_given() {
    let mut h = Harness::writable();
    let mut memory = GuestMemory::new(&mut h.memory);
    h.wasi.fd_prestat_get(&mut memory, 3, RESULT).unwrap();
    assert_eq!(memory.read_u32(RESULT + 4), Ok(5));
    h.wasi
        .fd_prestat_dir_name(&mut memory, 3, RESULT, 5)
        .unwrap();
    assert_eq!(memory.slice(RESULT, 5), Ok(&b"/data"[..]));
    assert_eq!(h.fdflags(3).0, filetype::DIRECTORY);
    assert_eq!(h.fstat(3).map(|stat| stat.0), Ok(filetype::DIRECTORY));
    assert_eq!(h.stat(".").map(|stat| stat.0), Ok(filetype::DIRECTORY));
}

#[test]
fn files_are_created_written_read_and_truncated() {
    let mut h = Harness::writable();
    let fd = h.create("f");
    assert_eq!(h.fdflags(fd).0, filetype::REGULAR_FILE);
    assert_eq!(h.write(fd, b"hello "), Ok(6));
    assert_eq!(h.write(fd, b"world"), Ok(5));
    assert_eq!(h.tell(fd), 11);
    assert_eq!(h.volume().contents("f"), Some(&b"hello world"[..]));
    // Reading from the position, then from the start.
    assert_eq!(h.read(fd, 10), Ok(vec![]));
    assert_eq!(h.seek(fd, 0, whence::SET), Ok(0));
    assert_eq!(h.read(fd, 5), Ok(b"hello".to_vec()));
    assert_eq!(h.read(fd, 100), Ok(b" world".to_vec()));
    assert_eq!(
        h.stat("f").map(|stat| (stat.0, stat.1)),
        Ok((filetype::REGULAR_FILE, 11))
    );
    // O_TRUNC empties it; without O_CREAT a missing name is ENOENT.
    let again = h.open("f", oflags::TRUNC, READ_WRITE).unwrap();
    assert_eq!(h.fstat(again).map(|stat| stat.1), Ok(0));
    assert_eq!(h.open("missing", 0, READ_ONLY), Err(Errno::NoEnt));
}

#[test]
fn open_refusals_are_the_errnos_go_expects() {
    let mut h = Harness::writable();
    h.create("f");
    h.mkdir("d").unwrap();
    let create_exclusive = oflags::CREAT | oflags::EXCL;
    assert_eq!(h.open("f", create_exclusive, READ_WRITE), Err(Errno::Exist));
    assert_eq!(h.open("d", create_exclusive, READ_WRITE), Err(Errno::Exist));
    assert_eq!(
        h.open("f", oflags::DIRECTORY, READ_ONLY),
        Err(Errno::NotDir)
    );
    assert_eq!(h.open("f/", 0, READ_ONLY), Err(Errno::NotDir));
    assert_eq!(h.open("d", 0, READ_WRITE), Err(Errno::IsDir));
    assert_eq!(h.open("d", 0, WRITE_ONLY), Err(Errno::IsDir));
    assert_eq!(h.open("new/", oflags::CREAT, READ_WRITE), Err(Errno::IsDir));
    assert_eq!(
        h.open("no/such", oflags::CREAT, READ_WRITE),
        Err(Errno::NoEnt)
    );
    assert_eq!(h.open("f/x", oflags::CREAT, READ_WRITE), Err(Errno::NotDir));
    assert_eq!(
        h.open("x", oflags::CREAT | oflags::DIRECTORY, READ_ONLY),
        Err(Errno::Inval)
    );
    assert_eq!(h.open("", 0, READ_ONLY), Err(Errno::NoEnt));
    // A directory opens for reading, as itself or under another name.
    let dir = h.open("d", 0, READ_ONLY).unwrap();
    assert_eq!(h.fdflags(dir).0, filetype::DIRECTORY);
    let this = h.open(".", oflags::DIRECTORY, READ_ONLY).unwrap();
    assert_eq!(h.fdflags(this).0, filetype::DIRECTORY);
    // Nothing refused left a handle open: the preopen, f's, d's and ".".
    assert_eq!(h.volume().open_handles(), 4);
}

#[test]
fn reading_or_writing_against_the_open_mode_is_ebadf() {
    let mut h = Harness::writable();
    h.create("f");
    let read_only = h.open("f", 0, READ_ONLY).unwrap();
    let write_only = h.open("f", 0, WRITE_ONLY).unwrap();
    assert_eq!(h.write(read_only, b"x"), Err(Errno::BadF));
    assert_eq!(h.pwrite(read_only, b"x", 0), Err(Errno::BadF));
    assert_eq!(h.read(write_only, 1), Err(Errno::BadF));
    assert_eq!(h.pread(write_only, 1, 0), Err(Errno::BadF));
    assert_eq!(h.write(write_only, b"ok"), Ok(2));
    // ftruncate needs a file open for writing (EINVAL, as on Linux).
    assert_eq!(h.wasi.fd_filestat_set_size(read_only, 0), Err(Errno::Inval));
    assert_eq!(h.wasi.fd_filestat_set_size(write_only, 0), Ok(()));
    // Directories are not read or written as files, whatever their rights.
    assert_eq!(h.read(3, 1), Err(Errno::IsDir));
    assert_eq!(h.write(3, b"x"), Err(Errno::IsDir));
    let listing_only = h.open(".", oflags::DIRECTORY, rights::FD_READDIR).unwrap();
    assert_eq!(h.read(listing_only, 1), Err(Errno::IsDir));
    assert_eq!(h.pread(listing_only, 1, 0), Err(Errno::IsDir));
    assert_eq!(h.seek(3, 0, whence::SET), Err(Errno::IsDir));
}

#[test]
fn append_writes_at_the_end_wherever_the_position_is() {
    let mut h = Harness::writable();
    let fd = h.create("log");
    h.write(fd, b"one\n").unwrap();
    let appender = h.open_in(3, "log", 0, READ_WRITE, fdflags::APPEND).unwrap();
    assert_eq!(h.fdflags(appender).1, fdflags::APPEND);
    assert_eq!(h.seek(appender, 0, whence::SET), Ok(0));
    h.write(appender, b"two\n").unwrap();
    assert_eq!(h.tell(appender), 8);
    // Another writer puts bytes at the end meanwhile; the append follows.
    h.pwrite(fd, b"three\n", 8).unwrap();
    h.write(appender, b"four\n").unwrap();
    assert_eq!(
        h.volume().contents("log"),
        Some(&b"one\ntwo\nthree\nfour\n"[..])
    );
    // Setting the flags keeps APPEND where Go's SetNonblock adds NONBLOCK.
    h.wasi
        .fd_fdstat_set_flags(appender, u32::from(fdflags::APPEND | fdflags::NONBLOCK))
        .unwrap();
    h.write(appender, b"five\n").unwrap();
    assert!(
        h.volume()
            .contents("log")
            .unwrap()
            .ends_with(b"four\nfive\n")
    );
}

#[test]
fn pread_pwrite_and_seek_work_at_offsets() {
    let mut h = Harness::writable();
    let fd = h.create("f");
    assert_eq!(h.pwrite(fd, b"abc", 5), Ok(3));
    assert_eq!(h.tell(fd), 0, "pwrite leaves the position");
    assert_eq!(h.volume().contents("f"), Some(&b"\0\0\0\0\0abc"[..]));
    assert_eq!(h.pread(fd, 10, 6), Ok(b"bc".to_vec()));
    assert_eq!(h.pread(fd, 10, 100), Ok(vec![]));
    assert_eq!(h.tell(fd), 0, "pread leaves the position");
    assert_eq!(h.seek(fd, -2, whence::END), Ok(6));
    assert_eq!(h.read(fd, 10), Ok(b"bc".to_vec()));
    assert_eq!(h.seek(fd, -1, whence::CUR), Ok(7));
    assert_eq!(h.seek(fd, -9, whence::END), Err(Errno::Inval));
    assert_eq!(h.seek(fd, 0, 9), Err(Errno::Inval));
    // Past the end: a write there leaves a gap of zeros.
    assert_eq!(h.seek(fd, 10, whence::SET), Ok(10));
    h.write(fd, b"z").unwrap();
    assert_eq!(h.volume().contents("f").map(<[u8]>::len), Some(11));
}

#[test]
fn reads_and_writes_larger_than_a_message_are_split() {
    let mut h = Harness::writable();
    let fd = h.create("big");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(h.write(fd, &data), Ok(data.len() as u32));
    assert!(h.volume().largest_io() <= MAX_FILE_IO);
    assert_eq!(h.volume().contents("big"), Some(&data[..]));
    h.memory[DATA as usize..DATA as usize + data.len()].fill(0);
    assert_eq!(h.pread(fd, 250_000, 0), Ok(data.clone()));
    assert_eq!(h.seek(fd, 0, whence::SET), Ok(0));
    assert_eq!(h.read(fd, 250_000), Ok(data));
    assert!(h.volume().largest_io() <= MAX_FILE_IO);
}

#[test]
fn a_write_that_fills_the_volume_is_short_then_enospc() {
    let mut h = Harness::new(MemoryVolume::with_capacity(100_000), true);
    let fd = h.create("f");
    // The first chunk fits, the second does not: a short count.
    let data = vec![7u8; 2 * MAX_FILE_IO];
    assert_eq!(h.write(fd, &data), Ok(MAX_FILE_IO as u32));
    assert_eq!(h.tell(fd), MAX_FILE_IO as u64);
    assert_eq!(h.write(fd, &data), Err(Errno::NoSpc));
}

#[test]
fn past_the_largest_file_is_efbig() {
    let mut h = Harness::writable();
    let fd = h.create("f");
    assert_eq!(h.pwrite(fd, b"x", MAX_FILE_BYTES), Err(Errno::FBig));
    assert_eq!(h.pwrite(fd, b"x", u64::MAX - 1), Err(Errno::FBig));
    assert_eq!(
        h.wasi.fd_filestat_set_size(fd, MAX_FILE_BYTES + 1),
        Err(Errno::FBig)
    );
    // A negative Go size is a huge u64: EINVAL, as ftruncate says.
    assert_eq!(h.wasi.fd_filestat_set_size(fd, u64::MAX), Err(Errno::Inval));
    // Far past the end, within the size limit: the volume is full before
    // the host allocates the gap.
    assert_eq!(h.pwrite(fd, b"x", 1 << 30), Err(Errno::NoSpc));
    assert_eq!(h.wasi.fd_filestat_set_size(fd, 1 << 30), Err(Errno::NoSpc));
}

#[test]
fn truncating_and_allocating_resize_the_file() {
    let mut h = Harness::writable();
    let fd = h.create("f");
    h.write(fd, b"0123456789").unwrap();
    h.wasi.fd_filestat_set_size(fd, 4).unwrap();
    assert_eq!(h.volume().contents("f"), Some(&b"0123"[..]));
    h.wasi.fd_filestat_set_size(fd, 6).unwrap();
    assert_eq!(h.volume().contents("f"), Some(&b"0123\0\0"[..]));
    h.wasi.fd_allocate(fd, 8, 4).unwrap();
    assert_eq!(h.fstat(fd).map(|stat| stat.1), Ok(12));
    h.wasi.fd_allocate(fd, 0, 4).unwrap();
    assert_eq!(h.fstat(fd).map(|stat| stat.1), Ok(12), "never shrinks");
    assert_eq!(h.wasi.fd_allocate(fd, 0, 0), Err(Errno::Inval));
    assert_eq!(h.wasi.fd_filestat_set_size(3, 0), Err(Errno::IsDir));
}

#[test]
fn sync_reaches_the_system_and_directories_need_none() {
    let mut h = Harness::writable();
    let fd = h.create("f");
    h.wasi.fd_sync(fd).unwrap();
    h.wasi.fd_datasync(fd).unwrap();
    assert_eq!(h.volume().syncs(), 2);
    h.wasi.fd_sync(3).unwrap();
    assert_eq!(h.volume().syncs(), 2);
    // A failure the System reports reaches the program.
    h.wasi.system_mut().fail_next = Some(Errno::Io);
    assert_eq!(h.wasi.fd_sync(fd), Err(Errno::Io));
}

#[test]
fn readdir_pages_through_many_entries_with_cookies() {
    let mut h = Harness::writable();
    h.mkdir("many").unwrap();
    for index in 0..300 {
        h.create(&alloc::format!("many/entry-{index:03}"));
    }
    h.mkdir("many/sub").unwrap();
    let dir = h.open("many", oflags::DIRECTORY, READ_ONLY).unwrap();
    // A small buffer: entries are cut off and read again from their cookie.
    let (entries, calls) = h.read_dir(dir, 200).unwrap();
    assert!(calls > 50, "{calls} calls");
    assert_eq!(entries.len(), 303);
    assert_eq!(entries[0], (".".into(), filetype::DIRECTORY));
    assert_eq!(entries[1], ("..".into(), filetype::DIRECTORY));
    for (index, (name, kind)) in entries[2..302].iter().enumerate() {
        assert_eq!(name, &alloc::format!("entry-{index:03}"));
        assert_eq!(*kind, filetype::REGULAR_FILE);
    }
    assert_eq!(entries[302], ("sub".into(), filetype::DIRECTORY));
    // Go's 8 KiB buffer.
    let (again, _) = h.read_dir(dir, 8192).unwrap();
    assert_eq!(again, entries);
    // Entries' inode numbers are those stat gives.
    let mut memory = GuestMemory::new(&mut h.memory);
    h.wasi
        .fd_readdir(&mut memory, dir, DATA, 8192, 2, RESULT)
        .unwrap();
    let ino = memory.read_u64(DATA + 8).unwrap();
    assert_eq!(h.stat("many/entry-000").map(|stat| stat.2), Ok(ino));
    // A file is not a directory to list.
    let file = h.open("many/entry-000", 0, READ_ONLY).unwrap();
    assert_eq!(h.read_dir(file, 200).err(), Some(Errno::NotDir));
}

#[test]
fn mkdir_unlink_and_rmdir_say_what_is_wrong() {
    let mut h = Harness::writable();
    assert_eq!(h.mkdir("d"), Ok(()));
    assert_eq!(h.mkdir("d"), Err(Errno::Exist));
    assert_eq!(h.mkdir("."), Err(Errno::Exist));
    assert_eq!(h.mkdir("no/d"), Err(Errno::NoEnt));
    h.create("d/f");
    assert_eq!(h.rmdir("d"), Err(Errno::NotEmpty));
    assert_eq!(h.rmdir("d/f"), Err(Errno::NotDir));
    assert_eq!(h.rmdir("."), Err(Errno::Inval));
    assert_eq!(h.rmdir("d/."), Err(Errno::Inval));
    assert_eq!(h.rmdir("gone"), Err(Errno::NoEnt));
    assert_eq!(h.unlink("d"), Err(Errno::IsDir));
    assert_eq!(h.unlink("d/f/"), Err(Errno::NotDir));
    assert_eq!(h.unlink("d/missing"), Err(Errno::NoEnt));
    assert_eq!(h.unlink("d/f"), Ok(()));
    assert_eq!(h.rmdir("d"), Ok(()));
    assert_eq!(h.stat("d"), Err(Errno::NoEnt));
}

#[test]
fn rename_replaces_files_and_refuses_mismatched_kinds() {
    let mut h = Harness::writable();
    let fd = h.create("a");
    h.write(fd, b"new").unwrap();
    let old = h.create("b");
    h.write(old, b"old").unwrap();
    h.mkdir("d").unwrap();
    h.mkdir("e").unwrap();
    h.create("e/inside");
    assert_eq!(h.rename("a", "b"), Ok(()));
    assert_eq!(h.volume().contents("b"), Some(&b"new"[..]));
    assert_eq!(h.stat("a"), Err(Errno::NoEnt));
    assert_eq!(h.rename("a", "c"), Err(Errno::NoEnt));
    assert_eq!(h.rename("b", "d"), Err(Errno::IsDir));
    assert_eq!(h.rename("d", "b"), Err(Errno::NotDir));
    assert_eq!(h.rename("d", "e"), Err(Errno::NotEmpty));
    assert_eq!(h.rename("d", "d/inner"), Err(Errno::Inval));
    assert_eq!(h.rename("b", "x/"), Err(Errno::NotDir));
    assert_eq!(h.rename(".", "z"), Err(Errno::Inval));
    assert_eq!(h.rename("d", "moved"), Ok(()));
    assert!(h.volume().is_directory("moved"));
}

#[test]
fn rename_between_two_directory_fds_names_the_target_directory() {
    let mut h = Harness::writable();
    h.mkdir("from").unwrap();
    h.mkdir("to").unwrap();
    h.create("from/f");
    let from = h.open("from", oflags::DIRECTORY, READ_ONLY).unwrap();
    let to = h.open("to", oflags::DIRECTORY, READ_ONLY).unwrap();
    h.rename_between(from, "f", to, "g").unwrap();
    assert!(h.volume().contents("to/g").is_some());
    let to_handle = match h.wasi.fd(to).unwrap().kind {
        crate::wasi::FdKind::SystemDirectory(dir) => dir.handle,
        _ => unreachable!("to is a system directory"),
    };
    assert_eq!(h.wasi.system().renamed_into, [to_handle]);
}

#[test]
fn paths_cannot_leave_the_directory_fd() {
    let mut h = Harness::writable();
    h.mkdir("d").unwrap();
    h.create("d/f");
    h.create("top");
    let dir = h.open("d", oflags::DIRECTORY, READ_ONLY).unwrap();
    assert_eq!(
        h.open("..", oflags::DIRECTORY, READ_ONLY),
        Err(Errno::NotCapable)
    );
    assert_eq!(h.stat("d/../../x"), Err(Errno::NotCapable));
    assert_eq!(h.stat("/top"), Err(Errno::NotCapable));
    // Inside the fd, ".." and "." resolve.
    assert_eq!(
        h.stat("d/../top").map(|stat| stat.0),
        Ok(filetype::REGULAR_FILE)
    );
    assert_eq!(
        h.stat("./d/./f").map(|stat| stat.0),
        Ok(filetype::REGULAR_FILE)
    );
    assert_eq!(
        h.open_in(dir, "../top", 0, READ_ONLY, 0),
        Err(Errno::NotCapable)
    );
    assert!(h.open_in(dir, "f", 0, READ_ONLY, 0).is_ok());
    // One file has one inode number, however it is reached.
    let through_dir = h.open_in(dir, "./f", 0, READ_ONLY, 0).unwrap();
    let ino = h.fstat(through_dir).unwrap().2;
    assert_eq!(h.stat("d/f").map(|stat| stat.2), Ok(ino));
    assert_ne!(h.stat("top").map(|stat| stat.2), Ok(ino));
}

#[test]
fn a_directory_opened_read_only_may_do_in_its_paths_what_it_hands_on() {
    let mut h = Harness::writable();
    h.mkdir("d").unwrap();
    // As Go's os.OpenRoot: read-only rights without PATH_FILESTAT_SET_SIZE,
    // Go's fileRights to hand on; Root.Create is then an O_TRUNC open.
    let dir = h
        .open(
            "d",
            oflags::DIRECTORY,
            READ_ONLY & !rights::PATH_FILESTAT_SET_SIZE,
        )
        .unwrap();
    let created = h.open_in(dir, "x", oflags::CREAT | oflags::TRUNC, READ_WRITE, 0);
    assert!(created.is_ok(), "{created:?}");
    // Rights dropped later are gone for good.
    h.wasi
        .fd_fdstat_set_rights(dir, READ_ONLY & !rights::PATH_CREATE_FILE, 0)
        .unwrap();
    assert_eq!(
        h.open_in(dir, "y", oflags::CREAT, READ_WRITE, 0),
        Err(Errno::NotCapable)
    );
}

#[test]
fn closing_and_renumbering_release_what_the_system_holds() {
    let mut h = Harness::writable();
    h.mkdir("d").unwrap();
    let before = h.volume().open_handles();
    let file = h.create("f");
    let dir = h.open("d", 0, READ_ONLY).unwrap();
    assert_eq!(h.volume().open_handles(), before + 2);
    h.wasi.fd_renumber(file, dir).unwrap();
    assert_eq!(h.volume().open_handles(), before + 1);
    h.wasi.fd_close(dir).unwrap();
    assert_eq!(h.volume().open_handles(), before);
    assert_eq!(h.wasi.fd_close(dir), Err(Errno::BadF));
    assert_eq!(h.write(dir, b"x"), Err(Errno::BadF));
}

#[test]
fn times_and_links_are_not_supported_but_missing_names_are_enoent() {
    let mut h = Harness::writable();
    h.create("f");
    let len = h.put_path(PATH, "f");
    let missing = h.put_path(OTHER_PATH, "g");
    let mut memory = GuestMemory::new(&mut h.memory);
    let times = h
        .wasi
        .path_filestat_set_times(&mut memory, 3, 1, PATH, len, 0, 0, 4);
    assert_eq!(times, Err(Errno::NoSys));
    let gone = h
        .wasi
        .path_filestat_set_times(&mut memory, 3, 1, OTHER_PATH, missing, 0, 0, 4);
    assert_eq!(gone, Err(Errno::NoEnt));
    assert_eq!(
        h.wasi
            .path_symlink(&mut memory, PATH, len, 3, OTHER_PATH, missing),
        Err(Errno::NoSys)
    );
    assert_eq!(
        h.wasi.path_symlink(&mut memory, PATH, len, 3, PATH, len),
        Err(Errno::Exist)
    );
    assert_eq!(
        h.wasi
            .path_link(&mut memory, 3, 0, PATH, len, 3, OTHER_PATH, missing),
        Err(Errno::NoSys)
    );
    assert_eq!(
        h.wasi
            .path_readlink(&mut memory, 3, PATH, len, DATA, 64, RESULT),
        Err(Errno::Inval)
    );
    assert_eq!(
        h.wasi
            .path_readlink(&mut memory, 3, OTHER_PATH, missing, DATA, 64, RESULT),
        Err(Errno::NoEnt)
    );
}

#[test]
fn a_read_only_mount_refuses_changes_after_the_usual_checks() {
    let mut volume = MemoryVolume::new();
    volume.insert_file("f", b"read me");
    volume.insert_file("d/inner", b"");
    let mut h = Harness::new(volume, false);
    let fd = h.open("f", 0, READ_ONLY).unwrap();
    assert_eq!(h.read(fd, 100), Ok(b"read me".to_vec()));
    assert_eq!(h.open("f", 0, READ_WRITE), Err(Errno::RoFs));
    assert_eq!(h.open("f", oflags::TRUNC, READ_ONLY), Err(Errno::RoFs));
    assert_eq!(h.open("new", oflags::CREAT, READ_WRITE), Err(Errno::RoFs));
    assert_eq!(
        h.open("no/new", oflags::CREAT, READ_WRITE),
        Err(Errno::NoEnt)
    );
    assert_eq!(
        h.open("f", oflags::CREAT | oflags::EXCL, READ_WRITE),
        Err(Errno::Exist)
    );
    assert_eq!(h.open("d", 0, READ_WRITE), Err(Errno::IsDir));
    assert_eq!(h.open("missing", 0, READ_WRITE), Err(Errno::NoEnt));
    assert_eq!(h.mkdir("d"), Err(Errno::Exist));
    assert_eq!(h.mkdir("e"), Err(Errno::RoFs));
    assert_eq!(h.unlink("f"), Err(Errno::RoFs));
    assert_eq!(h.unlink("d"), Err(Errno::IsDir));
    assert_eq!(h.unlink("missing"), Err(Errno::NoEnt));
    assert_eq!(h.rmdir("d"), Err(Errno::RoFs));
    assert_eq!(h.rmdir("f"), Err(Errno::NotDir));
    assert_eq!(h.rename("f", "g"), Err(Errno::RoFs));
    assert_eq!(h.rename("missing", "g"), Err(Errno::NoEnt));
    // Listing works as on any mount.
    let (entries, _) = h.read_dir(3, 4096).unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(h.volume().contents("f"), Some(&b"read me"[..]));
}

#[test]
fn errors_of_the_system_reach_the_program_as_they_are() {
    let mut h = Harness::writable();
    let fd = h.create("f");
    for errno in [Errno::Io, Errno::NoSpc, Errno::NameTooLong, Errno::RoFs] {
        h.wasi.system_mut().fail_next = Some(errno);
        assert_eq!(h.write(fd, b"x"), Err(errno));
    }
    h.wasi.system_mut().fail_next = Some(Errno::Io);
    assert_eq!(h.open("g", oflags::CREAT, READ_WRITE), Err(Errno::Io));
    h.wasi.system_mut().fail_next = Some(Errno::Io);
    assert_eq!(
        h.read_dir(3, 4096).err(),
        None,
        "\".\" and \"..\" come first"
    );
    h.wasi.system_mut().fail_next = Some(Errno::Io);
    let mut memory = GuestMemory::new(&mut h.memory);
    assert_eq!(
        h.wasi.fd_readdir(&mut memory, 3, DATA, 4096, 2, RESULT),
        Err(Errno::Io)
    );
}

#[test]
fn a_program_runs_out_of_fds_without_leaking_handles() {
    let mut disk = Disk::default();
    let root = disk.volume.root();
    let mut h = Harness {
        wasi: Wasi::builder(disk)
            .preopen_directory("/data", root, true)
            .max_open_fds(5)
            .build()
            .unwrap(),
        memory: vec![0; MEMORY],
    };
    h.create("a");
    assert_eq!(h.open("a", 0, READ_ONLY), Err(Errno::MFile));
    assert_eq!(h.volume().open_handles(), 2);
}

#[test]
fn the_default_system_has_no_files() {
    struct Bare;
    impl System for Bare {
        fn write_console(&mut self, _: Stream, _: &[u8]) -> Result<(), Errno> {
            Ok(())
        }
        fn now_nanos(&mut self, _: Clock) -> u64 {
            0
        }
        fn sleep_nanos(&mut self, _: u64) {}
        fn random(&mut self, _: &mut [u8]) -> Result<(), Errno> {
            Ok(())
        }
    }
    let mut wasi = Wasi::builder(Bare)
        .preopen_directory("/data", 1, true)
        .build()
        .unwrap();
    let mut memory = vec![0u8; 4096];
    memory[0x100] = b'f';
    let mut guest = GuestMemory::new(&mut memory);
    assert_eq!(
        wasi.path_open(&mut guest, 3, 1, 0x100, 1, 1, READ_WRITE, 0, 0, 0x200),
        Err(Errno::NoSys)
    );
    assert_eq!(
        wasi.path_filestat_get(&mut guest, 3, 1, 0x100, 1, 0x200),
        Err(Errno::NoSys)
    );
}
