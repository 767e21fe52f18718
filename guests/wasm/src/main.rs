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
//! The program's argv is MODULE then the ARGs. Exit code: the program's, or
//! 126 (cannot run it), 134 (it trapped), 137 (it hit a limit).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use guest_rt::caps::{CapId, ExceptionCode, TransportError};
use guest_rt::clients::{
    console_write, data, entropy_fill, start_info, timer_now, timer_realtime, timer_sleep,
};
use guest_rt::net;
use guest_rt::println;
use guest_rt::ring::CallError;
use wasm_host::{
    Clock, Errno, Host, Image, Limits, Readiness, RunError, SocketHandle, Stream, System, Tree,
    WasiBuilder,
};

guest_rt::entry!(main);

/// WASI over this guest's ring: Console, Timer, Entropy.
struct RingSystem;

impl System for RingSystem {
    fn write_console(&mut self, _stream: Stream, bytes: &[u8]) -> Result<(), Errno> {
        // Console lines carry the guest's name; stdout and stderr share it.
        console_write(&String::from_utf8_lossy(bytes))
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
        net::accept_now(socket(listener)?)
            .map(|stream| stream.map(CapId::raw))
            .map_err(socket_errno)
    }

    fn receive(&mut self, stream: SocketHandle, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        let max = buf.len().min(net::MAX_WRITE_BYTES) as u32;
        match net::read(socket(stream)?, max, false).map_err(socket_errno)? {
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
        match net::write(socket(stream)?, bytes, false).map_err(socket_errno)? {
            0 if !bytes.is_empty() => Ok(None),
            written => Ok(Some(written as usize)),
        }
    }

    fn shutdown(&mut self, stream: SocketHandle) -> Result<(), Errno> {
        net::shutdown(socket(stream)?).map_err(socket_errno)
    }

    fn close(&mut self, socket_handle: SocketHandle) {
        if let Ok(cap) = socket(socket_handle) {
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
            interests.push((socket(handle)?, read, write));
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
}

/// A socket handle is the raw id of its capability.
fn socket(handle: SocketHandle) -> Result<CapId, Errno> {
    CapId::from_raw(handle).ok_or(Errno::BadF)
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
    let wasi = match builder.preopen("/", tree).build() {
        Ok(wasi) => wasi,
        Err(error) => {
            println!("wasm: {error:?}");
            return 126;
        }
    };
    let host = Host::new(invocation.limits);
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
        Err(
            error @ (RunError::FuelExhausted { .. }
            | RunError::MemoryLimit { .. }
            | RunError::StackExhausted { .. }),
        ) => {
            println!("wasm: {error}");
            137
        }
        Err(error) => {
            println!("wasm: {error}");
            134
        }
    }
}
