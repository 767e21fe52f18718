//! Runs one WebAssembly program (a wasip1 module, e.g. Go with
//! GOOS=wasip1) inside this native guest, with WASI implemented over the
//! guest's capabilities.
//!
//! Arguments (module line `arg=` words), in order:
//! `[--env=KEY=VALUE]... [--dir=DATA] [--listen=PORT]... [--fuel=N] [--max-memory-mb=N] MODULE [ARG]...`
//! where MODULE and DATA name data modules: MODULE holds the .wasm,
//! DATA a ustar archive served read-only as the preopened directory "/".
//! Each `--listen` port becomes a listening socket (Network.listen),
//! preopened as fd 3, 4, ... in order, before the directory.
//! Every volume the appliance mounted for this guest (StartInfo's
//! `mounts`) is preopened after "/" at its path ("/data"), writable unless
//! the mount is read-only, over its Directory capability. With a writable
//! mount, TMPDIR is "<first writable mount>/tmp" (made if missing) unless
//! `--env=TMPDIR=...` says otherwise.
//! The program's argv is MODULE then the ARGs. Exit code: the program's, or
//! 126 (cannot run it), 134 (it trapped), 137 (it hit a limit).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use guest_rt::caps::interfaces::{directory, guest_control};
use guest_rt::caps::{CapId, ExceptionCode, FileError, TransportError};
use guest_rt::clients::{
    console_write_bytes, data, entropy_fill, start_info, timer_now, timer_realtime, timer_sleep,
};
use guest_rt::ring::CallError;
use guest_rt::{files, net, println};
use wasm_host::{
    Clock, DirEntry, DirectoryHandle, Errno, FileHandle, Host, Image, Limits, Metadata,
    OpenOptions, Opened, Readiness, SocketHandle, Stream, System, Tree, WasiBuilder,
};

guest_rt::entry!(main);

/// WASI over this guest's ring: Console, Timer, Entropy, Network, and the
/// Directory and File capabilities of its mounts.
struct RingSystem;

impl System for RingSystem {
    fn write_console(&mut self, _stream: Stream, bytes: &[u8]) -> Result<(), Errno> {
        // Console lines carry the guest's name; stdout and stderr share it.
        // The bytes go as they are (the console shows what is not text
        // escaped), in as many calls as their size needs.
        console_write_bytes(bytes)
            .map(|_| ())
            .map_err(|error| match error {
                // The appliance did not grant Console.
                CallError::Transport(TransportError::StaleCap) => Errno::NotCapable,
                _ => Errno::Io,
            })
    }

    fn now_nanos(&mut self, clock: Clock) -> u64 {
        match clock {
            Clock::Realtime => timer_realtime().or_else(|_| timer_now()).unwrap_or(0),
            Clock::Monotonic => timer_now().unwrap_or(0),
        }
    }

    fn sleep_nanos(&mut self, nanos: u64) {
        let _ = timer_sleep(nanos);
    }

    fn random(&mut self, out: &mut [u8]) -> Result<(), Errno> {
        for chunk in out.chunks_mut(4096) {
            let bytes = entropy_fill(chunk.len() as u32).map_err(|_| Errno::Io)?;
            chunk.copy_from_slice(&bytes);
        }
        Ok(())
    }

    fn yield_now(&mut self) {
        guest_rt::syscall::cap_enter(0, 0);
    }

    fn accept(&mut self, listener: SocketHandle) -> Result<Option<SocketHandle>, Errno> {
        net::accept_now(capability(listener)?)
            .map(|stream| stream.map(CapId::raw))
            .map_err(socket_errno)
    }

    fn receive(&mut self, stream: SocketHandle, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        let max = buf.len().min(net::MAX_WRITE_BYTES) as u32;
        match net::read(capability(stream)?, max, false).map_err(socket_errno)? {
            net::Read::Data(data) => {
                let len = data.len().min(buf.len());
                buf[..len].copy_from_slice(&data[..len]);
                Ok(Some(len))
            }
            net::Read::Nothing => Ok(None),
            net::Read::End => Ok(Some(0)),
        }
    }

    fn send(&mut self, stream: SocketHandle, bytes: &[u8]) -> Result<Option<usize>, Errno> {
        match net::write(capability(stream)?, bytes, false).map_err(socket_errno)? {
            0 if !bytes.is_empty() => Ok(None),
            written => Ok(Some(written as usize)),
        }
    }

    fn shutdown(&mut self, stream: SocketHandle) -> Result<(), Errno> {
        net::shutdown(capability(stream)?).map_err(socket_errno)
    }

    fn close(&mut self, socket_handle: SocketHandle) {
        if let Ok(cap) = capability(socket_handle) {
            net::close(cap);
        }
    }

    fn poll(
        &mut self,
        sockets: &[(SocketHandle, bool, bool)],
        timeout_nanos: Option<u64>,
    ) -> Result<Vec<Readiness>, Errno> {
        let mut interests = Vec::with_capacity(sockets.len());
        for &(handle, read, write) in sockets {
            interests.push((capability(handle)?, read, write));
        }
        let ready =
            net::poll(&interests, timeout_nanos.unwrap_or(u64::MAX)).map_err(socket_errno)?;
        Ok(sockets
            .iter()
            .enumerate()
            .map(|(index, _)| {
                ready
                    .get(index)
                    .map_or(Readiness::default(), |r| Readiness {
                        read: r.read,
                        write: r.write,
                    })
            })
            .collect())
    }

    fn open(
        &mut self,
        dir: DirectoryHandle,
        path: &str,
        options: OpenOptions,
    ) -> Result<Opened, Errno> {
        let params = directory::OpenParams {
            path: path.into(),
            create: options.create,
            exclusive: options.exclusive,
            truncate: options.truncate,
            directory: options.directory,
        };
        let opened = files::open(capability(dir)?, &params).map_err(file_errno)?;
        Ok(if opened.directory {
            Opened::Directory(opened.cap.raw())
        } else {
            Opened::File(opened.cap.raw())
        })
    }

    fn mkdir(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        files::mkdir(capability(dir)?, path).map_err(file_errno)
    }

    fn remove(&mut self, dir: DirectoryHandle, path: &str) -> Result<(), Errno> {
        files::remove(capability(dir)?, path).map_err(file_errno)
    }

    fn rename(
        &mut self,
        dir: DirectoryHandle,
        from: &str,
        to_dir: DirectoryHandle,
        to: &str,
    ) -> Result<(), Errno> {
        let target = if to_dir == dir {
            None
        } else {
            Some(capability(to_dir)?)
        };
        files::rename(capability(dir)?, from, target, to).map_err(file_errno)
    }

    fn list(&mut self, dir: DirectoryHandle, skip: u64, max: u32) -> Result<Vec<DirEntry>, Errno> {
        let entries = files::list(capability(dir)?, skip, max).map_err(file_errno)?;
        Ok(entries
            .into_iter()
            .map(|entry| DirEntry {
                name: entry.name,
                metadata: metadata(&entry.metadata),
            })
            .collect())
    }

    fn stat(&mut self, dir: DirectoryHandle, path: &str) -> Result<Metadata, Errno> {
        files::stat(capability(dir)?, path)
            .map(|found| metadata(&found))
            .map_err(file_errno)
    }

    fn read_at(&mut self, file: FileHandle, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let max = buf.len().min(files::MAX_IO_BYTES) as u32;
        let data = files::read_at(capability(file)?, offset, max).map_err(file_errno)?;
        let len = data.len().min(buf.len());
        buf[..len].copy_from_slice(&data[..len]);
        Ok(len)
    }

    fn write_at(&mut self, file: FileHandle, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        files::write_at(capability(file)?, offset, bytes).map_err(file_errno)
    }

    fn append(&mut self, file: FileHandle, bytes: &[u8]) -> Result<u64, Errno> {
        files::append(capability(file)?, bytes).map_err(file_errno)
    }

    fn file_size(&mut self, file: FileHandle) -> Result<u64, Errno> {
        files::size(capability(file)?).map_err(file_errno)
    }

    fn truncate(&mut self, file: FileHandle, size: u64) -> Result<(), Errno> {
        files::truncate(capability(file)?, size).map_err(file_errno)
    }

    fn sync_file(&mut self, file: FileHandle) -> Result<(), Errno> {
        files::sync(capability(file)?).map_err(file_errno)
    }

    fn close_file(&mut self, file: FileHandle) {
        if let Ok(cap) = capability(file) {
            files::close(cap);
        }
    }

    fn close_directory(&mut self, dir: DirectoryHandle) {
        if let Ok(cap) = capability(dir) {
            files::close(cap);
        }
    }
}

/// A socket, directory or file handle is the raw id of its capability.
fn capability(handle: u32) -> Result<CapId, Errno> {
    CapId::from_raw(handle).ok_or(Errno::BadF)
}

fn metadata(found: &directory::Metadata) -> Metadata {
    Metadata {
        directory: found.directory,
        size: found.size,
    }
}

/// The errno Go expects for a failed Directory or File call.
fn file_errno(error: CallError) -> Errno {
    if let Some(named) = files::file_error(&error) {
        return match named {
            FileError::NotFound => Errno::NoEnt,
            FileError::Exists => Errno::Exist,
            FileError::NotDirectory => Errno::NotDir,
            FileError::IsDirectory => Errno::IsDir,
            FileError::NotEmpty => Errno::NotEmpty,
            FileError::NoSpace => Errno::NoSpc,
            FileError::TooLarge => Errno::FBig,
            FileError::NameTooLong => Errno::NameTooLong,
            // The WASI layer resolves ".." itself; a path the service
            // still finds leading out is one the program may not name.
            FileError::Escapes => Errno::NotCapable,
            FileError::Invalid => Errno::Inval,
            FileError::ReadOnly => Errno::RoFs,
            FileError::Corrupt | FileError::Io => Errno::Io,
        };
    }
    match error {
        // A read-only mount's capabilities lack `write`.
        CallError::Transport(TransportError::MissingRight) => Errno::RoFs,
        CallError::Transport(
            TransportError::StaleCap | TransportError::InvalidCap | TransportError::WrongCapKind,
        ) => Errno::BadF,
        CallError::Transport(TransportError::CapQuotaExceeded) => Errno::NFile,
        CallError::Exception(e) if e.code == ExceptionCode::InvalidArgument => Errno::Inval,
        CallError::Exception(e) if e.code == ExceptionCode::Unimplemented => Errno::NoSys,
        CallError::Exception(e) if e.code == ExceptionCode::Denied => Errno::Acces,
        _ => Errno::Io,
    }
}

/// The errno Go expects for a failed socket call.
fn socket_errno(error: CallError) -> Errno {
    match error {
        CallError::Exception(e) if e.code == ExceptionCode::Disconnected => Errno::ConnReset,
        CallError::Exception(e) if e.code == ExceptionCode::Overloaded => Errno::NoBufs,
        CallError::Exception(e) if e.code == ExceptionCode::Denied => Errno::Acces,
        CallError::Transport(TransportError::StaleCap) => Errno::BadF,
        CallError::Transport(TransportError::WrongCapKind) => Errno::NotSock,
        _ => Errno::Io,
    }
}

/// Where the program's temporary files go: "tmp" on the first writable
/// mount, made if it is not there (the mount itself if it cannot be).
fn temporary_directory(mounts: &[guest_control::Mount]) -> Option<String> {
    let mount = mounts.iter().find(|mount| mount.writable)?;
    let root = CapId::from_raw(mount.directory)?;
    let made = match files::mkdir(root, "tmp") {
        Ok(()) => true,
        Err(error) if files::file_error(&error) == Some(FileError::Exists) => {
            files::stat(root, "tmp").is_ok_and(|found| found.directory)
        }
        Err(_) => false,
    };
    let base = mount.path.trim_end_matches('/');
    Some(if made {
        alloc::format!("{base}/tmp")
    } else if base.is_empty() {
        String::from("/")
    } else {
        String::from(base)
    })
}

struct Invocation {
    env: Vec<(String, String)>,
    dir: Option<String>,
    listen: Vec<u16>,
    limits: Limits,
    module: String,
    args: Vec<String>,
}

fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut invocation = Invocation {
        env: Vec::new(),
        dir: None,
        listen: Vec::new(),
        limits: Limits::default(),
        module: String::new(),
        args: Vec::new(),
    };
    let mut rest = args.iter();
    for arg in rest.by_ref() {
        if let Some(pair) = arg.strip_prefix("--env=") {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| alloc::format!("--env needs KEY=VALUE, not {pair}"))?;
            invocation.env.push((key.into(), value.into()));
        } else if let Some(dir) = arg.strip_prefix("--dir=") {
            invocation.dir = Some(dir.into());
        } else if let Some(port) = arg.strip_prefix("--listen=") {
            invocation.listen.push(
                port.parse()
                    .map_err(|_| alloc::format!("bad --listen port {port}"))?,
            );
        } else if let Some(fuel) = arg.strip_prefix("--fuel=") {
            invocation.limits.fuel = Some(
                fuel.parse()
                    .map_err(|_| alloc::format!("bad --fuel {fuel}"))?,
            );
        } else if let Some(mb) = arg.strip_prefix("--max-memory-mb=") {
            let mb: u32 = mb
                .parse()
                .map_err(|_| alloc::format!("bad --max-memory-mb {mb}"))?;
            invocation.limits.max_memory_pages = mb.saturating_mul(16);
        } else if arg.starts_with("--") {
            return Err(alloc::format!("unknown option {arg}"));
        } else {
            invocation.module = arg.clone();
            break;
        }
    }
    if invocation.module.is_empty() {
        return Err(
            "no MODULE: the first argument that is not an option names the .wasm data module"
                .into(),
        );
    }
    invocation.args = core::iter::once(invocation.module.clone())
        .chain(rest.cloned())
        .collect();
    Ok(invocation)
}

/// Linear memory and tables live in this guest's heap (the appliance's
/// `heapMib`): their limits are what the heap can still hold, less room
/// for the interpreter itself, unless the appliance set a lower one
/// (`memoryMib`). Growth the heap cannot hold even so stops the program
/// with the limit named (`RunError::OutOfMemory`), never a failed
/// allocation.
fn limits_within_heap(mut limits: Limits) -> Limits {
    let (in_use, _, size) = guest_rt::heap::usage();
    let free = size.saturating_sub(in_use);
    let interpreter = (size / 8).max(INTERPRETER_RESERVE);
    let room = free.saturating_sub(interpreter);
    let pages = u32::try_from(room / wasm_host::PAGE_SIZE).unwrap_or(u32::MAX);
    limits.max_memory_pages = limits.max_memory_pages.min(pages);
    // A table element is a few words; a table is never more than an
    // eighth of the heap.
    let elements = u32::try_from(room / 8 / TABLE_ELEMENT_BYTES).unwrap_or(u32::MAX);
    limits.max_table_elements = limits.max_table_elements.min(elements);
    limits
}

/// Heap kept for wasmi's compiled code, stacks and WASI state beside
/// linear memory, when an eighth of the heap is less.
const INTERPRETER_RESERVE: usize = 4 << 20;
/// Heap one table element may take (wasmi's untyped reference, with room).
const TABLE_ELEMENT_BYTES: usize = 16;

fn main() -> i32 {
    let info = start_info().expect("GuestControl.startInfo");
    let invocation = match parse(&info.args) {
        Ok(invocation) => invocation,
        Err(why) => {
            println!("wasm: {why}");
            return 126;
        }
    };
    let Some(module) = data(&invocation.module).expect("GuestControl.startInfo") else {
        println!(
            "wasm: no data module named '{}' was given to this guest",
            invocation.module
        );
        return 126;
    };
    let tree = match &invocation.dir {
        None => Tree::empty(),
        Some(name) => match data(name).expect("GuestControl.startInfo") {
            None => {
                println!("wasm: no data module named '{name}' for --dir");
                return 126;
            }
            Some(bytes) => match Tree::from_ustar(Image::Static(bytes)) {
                Ok(tree) => tree,
                Err(error) => {
                    println!("wasm: --dir={name} is not a usable ustar archive: {error}");
                    return 126;
                }
            },
        },
    };
    let mounts = &info.mounts;
    let mut builder = WasiBuilder::new(RingSystem).args(invocation.args.iter().cloned());
    for &port in &invocation.listen {
        match net::listen(port) {
            // The listener's capability now belongs to the WASI fd.
            Ok(listener) => builder = builder.preopen_socket(listener.into_cap().raw()),
            Err(error) => {
                println!("wasm: cannot listen on port {port}: {error}");
                return 126;
            }
        }
    }
    for (key, value) in &invocation.env {
        builder = builder.env(key.clone(), value.clone());
    }
    if !invocation.env.iter().any(|(key, _)| key == "TMPDIR")
        && let Some(tmpdir) = temporary_directory(mounts)
    {
        builder = builder.env("TMPDIR", tmpdir);
    }
    // A volume mounted at "/" is the root, unless --dir gave one.
    if invocation.dir.is_some() || !mounts.iter().any(|mount| mount.path == "/") {
        builder = builder.preopen("/", tree);
    }
    for mount in mounts {
        builder = builder.preopen_directory(mount.path.clone(), mount.directory, mount.writable);
    }
    let wasi = match builder.build() {
        Ok(wasi) => wasi,
        Err(error) => {
            println!("wasm: {error:?}");
            return 126;
        }
    };
    let host = Host::new(limits_within_heap(invocation.limits));
    let program = match host.load(module) {
        Ok(program) => program,
        Err(error) => {
            println!("wasm: {error}");
            return 126;
        }
    };
    let result = host.run(&program, wasi).result;
    let (_, peak, size) = guest_rt::heap::usage();
    println!(
        "wasm: peak heap {:.1} MiB of {} MiB",
        peak as f64 / (1 << 20) as f64,
        size >> 20
    );
    match result {
        Ok(code) => code as i32,
        Err(error) => {
            println!("wasm: {error}");
            i32::from(error.exit_status())
        }
    }
}
