//! Running a module: wasmi underneath, the limits of one instance, and the
//! glue from each `wasi_snapshot_preview1` import to [`Wasi`].
//!
//! [`Host::load`] validates a module once; [`Host::run`] instantiates it
//! with a [`Wasi`], calls `_start`, and gives back the exit code (0 when
//! `_start` returns, the code of `proc_exit` otherwise) or a [`RunError`].
//! A limit running out (memory, fuel, call depth) stops the instance with
//! its own [`RunError`], never a panic.

use alloc::string::{String, ToString};
use core::fmt;

use wasmi::{Caller, Config, Engine, ExternType, Linker, Module, ResourceLimiter, Store, TrapCode};
use wasmi_core::LimiterError;

use crate::abi::MODULE;
use crate::memory::GuestMemory;
use crate::system::System;
use crate::wasi::{Wasi, WasiResult};

/// A wasm page: 64 KiB.
pub const PAGE_SIZE: usize = 64 * 1024;

/// The least value stack wasmi accepts (it panics below its minimum).
const MIN_VALUE_STACK_BYTES: usize = 1000;

/// The limits of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, in 64 KiB pages. Growing past it stops the instance
    /// with [`RunError::MemoryLimit`].
    pub max_memory_pages: u32,
    /// The instruction budget, in wasmi fuel units (about one per
    /// instruction); `None` runs without metering, which is faster.
    pub fuel: Option<u64>,
    /// Nested wasm calls. Go calls deeply (every Go call is a wasm call);
    /// wasmi's default of 1000 is far too few.
    pub max_call_depth: usize,
    /// wasmi's value stack (locals and temporaries of all active calls), in
    /// bytes.
    pub max_value_stack_bytes: usize,
    /// Elements in one table. Growing past it stops the instance with
    /// [`RunError::TableLimit`].
    pub max_table_elements: u32,
}

impl Default for Limits {
    /// 1 GiB of memory, no fuel limit, 100 000 calls deep, a 64 MiB value
    /// stack: enough for Go's standard library tests.
    fn default() -> Limits {
        Limits {
            max_memory_pages: 16 * 1024,
            fuel: None,
            max_call_depth: 100_000,
            max_value_stack_bytes: 64 << 20,
            max_table_elements: 1 << 20,
        }
    }
}

/// Why a module could not run to an exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// The bytes are not a valid WebAssembly module.
    InvalidModule(String),
    /// The module imports something this host does not provide.
    UnsupportedImport { module: String, name: String },
    /// The module does not export a `_start` function `() -> ()`.
    NoStart,
    /// Instantiation failed (a signature mismatch, a start function trap).
    Instantiation(String),
    /// The instruction budget ran out.
    FuelExhausted { budget: u64 },
    /// Linear memory would have grown past the limit.
    MemoryLimit { max_pages: u32 },
    /// Linear memory could not grow from `pages` to `wanted`: the memory it
    /// lives in (the embedder's heap) has no room for it.
    OutOfMemory { pages: u64, wanted: u64 },
    /// A table would have grown past the limit.
    TableLimit { max_elements: u32 },
    /// Calls nested deeper than the call-depth or value-stack limit.
    StackExhausted { max_call_depth: usize },
    /// Any other trap: `unreachable`, an out-of-bounds access, ...
    Trap(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::InvalidModule(why) => write!(f, "invalid wasm module: {why}"),
            RunError::UnsupportedImport { module, name } => write!(
                f,
                "the module imports {module}.{name}, which this host does not provide \
                 (it provides {MODULE} only)"
            ),
            RunError::NoStart => write!(f, "the module exports no _start function"),
            RunError::Instantiation(why) => write!(f, "cannot instantiate the module: {why}"),
            RunError::FuelExhausted { budget } => {
                write!(
                    f,
                    "stopped: the instruction budget of {budget} fuel units is exhausted"
                )
            }
            RunError::MemoryLimit { max_pages } => write!(
                f,
                "stopped: linear memory would grow past the limit of {max_pages} pages ({} KiB)",
                u64::from(*max_pages) * 64
            ),
            RunError::OutOfMemory { pages, wanted } => write!(
                f,
                "stopped: linear memory could not grow from {pages} to {wanted} pages \
                 ({} KiB): the heap it lives in is full",
                wanted * 64
            ),
            RunError::TableLimit { max_elements } => write!(
                f,
                "stopped: a table would grow past the limit of {max_elements} elements"
            ),
            RunError::StackExhausted { max_call_depth } => write!(
                f,
                "stopped: call stack exhausted (limit {max_call_depth} nested calls or the value stack)"
            ),
            RunError::Trap(why) => write!(f, "trapped: {why}"),
        }
    }
}

impl core::error::Error for RunError {}

impl RunError {
    /// The status a command-line runner exits with, by shell convention:
    /// 137 (as if killed) when a limit stopped the program, 134 (as if
    /// aborted) when it trapped, 126 ("cannot execute") when it never ran.
    pub fn exit_status(&self) -> u8 {
        match self {
            RunError::FuelExhausted { .. }
            | RunError::MemoryLimit { .. }
            | RunError::OutOfMemory { .. }
            | RunError::TableLimit { .. }
            | RunError::StackExhausted { .. } => 137,
            RunError::Trap(_) => 134,
            RunError::InvalidModule(_)
            | RunError::UnsupportedImport { .. }
            | RunError::NoStart
            | RunError::Instantiation(_) => 126,
        }
    }
}

/// How a run ended, with the instance's WASI state (and its [`System`])
/// handed back.
pub struct Outcome<S> {
    /// The exit code, or why there is none.
    pub result: Result<u32, RunError>,
    /// Fuel used, when a budget was set.
    pub fuel_consumed: Option<u64>,
    pub wasi: Wasi<S>,
}

/// A validated module, ready to run any number of times.
#[derive(Clone)]
pub struct Program {
    module: Module,
}

/// An engine configured with one set of [`Limits`].
pub struct Host {
    engine: Engine,
    limits: Limits,
}

/// Store data: the WASI state, the memory its calls use, the memory limit.
struct State<S> {
    wasi: Wasi<S>,
    memory: Option<wasmi::Memory>,
    limiter: MemoryLimiter,
}

/// Refuses (with a trap) memory and table growth past the limits, and
/// growth the heap cannot hold (which wasmi asks for fallibly), and
/// remembers why so the run can say it: a program that outgrows its
/// memory is stopped with the limit named, not left to read a failed
/// `memory.grow` as it likes.
struct MemoryLimiter {
    max_bytes: usize,
    max_table_elements: usize,
    stopped_by: Option<RunError>,
    /// The last growth allowed: what failed, if the heap refused it.
    growing: (usize, usize),
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if desired > self.max_bytes {
            self.stopped_by = Some(RunError::MemoryLimit {
                max_pages: (self.max_bytes / PAGE_SIZE) as u32,
            });
            return Err(LimiterError::ResourceLimiterDeniedAllocation);
        }
        self.growing = (current, desired);
        Ok(true)
    }

    fn memory_grow_failed(
        &mut self,
        _error: &wasmi::errors::MemoryError,
    ) -> Result<(), LimiterError> {
        let (current, desired) = self.growing;
        self.stopped_by = Some(RunError::OutOfMemory {
            pages: (current / PAGE_SIZE) as u64,
            wanted: (desired / PAGE_SIZE) as u64,
        });
        Err(LimiterError::ResourceLimiterDeniedAllocation)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        if desired > self.max_table_elements {
            self.stopped_by = Some(RunError::TableLimit {
                max_elements: self.max_table_elements as u32,
            });
            return Err(LimiterError::ResourceLimiterDeniedAllocation);
        }
        Ok(true)
    }

    fn table_grow_failed(
        &mut self,
        _error: &wasmi::errors::TableError,
    ) -> Result<(), LimiterError> {
        self.stopped_by = Some(RunError::TableLimit {
            max_elements: self.max_table_elements as u32,
        });
        Err(LimiterError::ResourceLimiterDeniedAllocation)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        16
    }

    /// WASI passes pointers into one memory, "memory".
    fn memories(&self) -> usize {
        1
    }
}

impl Host {
    pub fn new(limits: Limits) -> Host {
        let mut config = Config::default();
        config
            .consume_fuel(limits.fuel.is_some())
            .set_max_recursion_depth(limits.max_call_depth.max(1))
            .set_max_stack_height(limits.max_value_stack_bytes.max(MIN_VALUE_STACK_BYTES));
        Host {
            engine: Engine::new(&config),
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses and validates `wasm`, and checks that every import is one
    /// this host provides.
    pub fn load(&self, wasm: &[u8]) -> Result<Program, RunError> {
        let module = Module::new(&self.engine, wasm)
            .map_err(|error| RunError::InvalidModule(error.to_string()))?;
        for import in module.imports() {
            let provided = import.module() == MODULE
                && matches!(import.ty(), ExternType::Func(_))
                && IMPORTS.contains(&import.name());
            if !provided {
                return Err(RunError::UnsupportedImport {
                    module: import.module().to_string(),
                    name: import.name().to_string(),
                });
            }
        }
        Ok(Program { module })
    }

    /// Runs `program`'s `_start` with `wasi` to its end.
    pub fn run<S: System + 'static>(&self, program: &Program, wasi: Wasi<S>) -> Outcome<S> {
        let state = State {
            wasi,
            memory: None,
            limiter: MemoryLimiter {
                max_bytes: (self.limits.max_memory_pages as usize).saturating_mul(PAGE_SIZE),
                max_table_elements: self.limits.max_table_elements as usize,
                stopped_by: None,
                growing: (0, 0),
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if let Some(fuel) = self.limits.fuel {
            // Cannot fail: fuel metering is on whenever a budget is set.
            let _ = store.set_fuel(fuel);
        }
        let result = self.instantiate_and_start(program, &mut store);
        let fuel_consumed = self
            .limits
            .fuel
            .map(|budget| budget.saturating_sub(store.get_fuel().unwrap_or(0)));
        Outcome {
            result,
            fuel_consumed,
            wasi: store.into_data().wasi,
        }
    }

    fn instantiate_and_start<S: System + 'static>(
        &self,
        program: &Program,
        store: &mut Store<State<S>>,
    ) -> Result<u32, RunError> {
        let mut linker = Linker::new(&self.engine);
        define_imports(&mut linker).map_err(|error| RunError::Instantiation(error.to_string()))?;
        let instance = match linker.instantiate_and_start(&mut *store, &program.module) {
            Ok(instance) => instance,
            Err(error) => {
                return match self.stopped(error, store.data()) {
                    Ok(code) => Ok(code),
                    Err(RunError::Trap(why)) => Err(RunError::Instantiation(why)),
                    Err(other) => Err(other),
                };
            }
        };
        store.data_mut().memory = instance.get_memory(&*store, "memory");
        let start = instance
            .get_typed_func::<(), ()>(&*store, "_start")
            .map_err(|_| RunError::NoStart)?;
        match start.call(&mut *store, ()) {
            Ok(()) => Ok(0),
            Err(error) => self.stopped(error, store.data()),
        }
    }

    /// What ended a run that did not return from `_start`.
    fn stopped<S>(&self, error: wasmi::Error, state: &State<S>) -> Result<u32, RunError> {
        if let Some(code) = state.wasi.exit_code() {
            return Ok(code);
        }
        if let Some(why) = &state.limiter.stopped_by {
            return Err(why.clone());
        }
        match error.as_trap_code() {
            Some(TrapCode::OutOfFuel) => Err(RunError::FuelExhausted {
                budget: self.limits.fuel.unwrap_or(0),
            }),
            Some(TrapCode::StackOverflow) => Err(RunError::StackExhausted {
                max_call_depth: self.limits.max_call_depth,
            }),
            Some(code) => Err(RunError::Trap(code.trap_message().to_string())),
            None => Err(RunError::Trap(error.to_string())),
        }
    }
}

/// Loads and runs `wasm` once with `limits`.
pub fn run<S: System + 'static>(wasm: &[u8], wasi: Wasi<S>, limits: Limits) -> Outcome<S> {
    let host = Host::new(limits);
    match host.load(wasm) {
        Ok(program) => host.run(&program, wasi),
        Err(error) => Outcome {
            result: Err(error),
            fuel_consumed: None,
            wasi,
        },
    }
}

/// Calls one WASI function with the instance's memory (empty if the module
/// exports none, so every pointer is `EFAULT`) and turns its result into
/// the errno the import returns.
fn call<S: System>(
    caller: &mut Caller<'_, State<S>>,
    function: impl FnOnce(&mut Wasi<S>, &mut GuestMemory) -> WasiResult,
) -> i32 {
    // Known once `_start` runs; a module's start function runs before
    // that, so look the export up then (and keep it).
    if caller.data().memory.is_none() {
        let exported = caller
            .get_export("memory")
            .and_then(wasmi::Extern::into_memory);
        caller.data_mut().memory = exported;
    }
    let (bytes, state) = match caller.data().memory {
        Some(memory) => memory.data_and_store_mut(&mut *caller),
        None => (&mut [][..], caller.data_mut()),
    };
    let mut memory = GuestMemory::new(bytes);
    match function(&mut state.wasi, &mut memory) {
        Ok(()) => 0,
        Err(errno) => i32::from(errno.code()),
    }
}

/// The name of every import the host provides: all of
/// `wasi_snapshot_preview1`.
pub const IMPORTS: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "environ_get",
    "environ_sizes_get",
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_dir_name",
    "fd_prestat_get",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "random_get",
    "sched_yield",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];

/// Defines one import: its wasm parameter types, and the [`Wasi`] call.
/// Wasm's i32 and i64 carry WASI's unsigned values, hence the `as` casts.
macro_rules! import {
    ($linker:ident, $name:literal, |$wasi:ident, $memory:ident $(, $arg:ident: $ty:ty)*| $body:expr) => {
        $linker.func_wrap(MODULE, $name, |mut caller: Caller<'_, State<S>>, $($arg: $ty),*| -> i32 {
            #[allow(unused_variables)]
            call(&mut caller, |$wasi, $memory| $body)
        })?;
    };
}

fn define_imports<S: System + 'static>(linker: &mut Linker<State<S>>) -> Result<(), wasmi::Error> {
    import!(linker, "args_get", |w, m, argv: i32, buf: i32| w.args_get(
        m,
        argv as u32,
        buf as u32
    ));
    import!(linker, "args_sizes_get", |w, m, count: i32, size: i32| w
        .args_sizes_get(m, count as u32, size as u32));
    import!(linker, "environ_get", |w, m, environ: i32, buf: i32| w
        .environ_get(m, environ as u32, buf as u32));
    import!(
        linker,
        "environ_sizes_get",
        |w, m, count: i32, size: i32| w.environ_sizes_get(m, count as u32, size as u32)
    );
    import!(linker, "clock_res_get", |w, m, id: i32, out: i32| w
        .clock_res_get(m, id as u32, out as u32));
    import!(
        linker,
        "clock_time_get",
        |w, m, id: i32, precision: i64, out: i32| w.clock_time_get(
            m,
            id as u32,
            precision as u64,
            out as u32
        )
    );
    import!(
        linker,
        "fd_advise",
        |w, m, fd: i32, offset: i64, len: i64, advice: i32| w.fd_advise(
            fd as u32,
            offset as u64,
            len as u64,
            advice as u32
        )
    );
    import!(
        linker,
        "fd_allocate",
        |w, m, fd: i32, offset: i64, len: i64| w.fd_allocate(fd as u32, offset as u64, len as u64)
    );
    import!(linker, "fd_close", |w, m, fd: i32| w.fd_close(fd as u32));
    import!(linker, "fd_datasync", |w, m, fd: i32| w
        .fd_datasync(fd as u32));
    import!(linker, "fd_fdstat_get", |w, m, fd: i32, out: i32| w
        .fd_fdstat_get(m, fd as u32, out as u32));
    import!(
        linker,
        "fd_fdstat_set_flags",
        |w, m, fd: i32, flags: i32| w.fd_fdstat_set_flags(fd as u32, flags as u32)
    );
    import!(
        linker,
        "fd_fdstat_set_rights",
        |w, m, fd: i32, base: i64, inheriting: i64| w.fd_fdstat_set_rights(
            fd as u32,
            base as u64,
            inheriting as u64
        )
    );
    import!(linker, "fd_filestat_get", |w, m, fd: i32, out: i32| w
        .fd_filestat_get(m, fd as u32, out as u32));
    import!(
        linker,
        "fd_filestat_set_size",
        |w, m, fd: i32, size: i64| w.fd_filestat_set_size(fd as u32, size as u64)
    );
    import!(
        linker,
        "fd_filestat_set_times",
        |w, m, fd: i32, atim: i64, mtim: i64, flags: i32| w.fd_filestat_set_times(
            fd as u32,
            atim as u64,
            mtim as u64,
            flags as u32
        )
    );
    import!(
        linker,
        "fd_pread",
        |w, m, fd: i32, iovs: i32, count: i32, offset: i64, out: i32| w.fd_pread(
            m,
            fd as u32,
            iovs as u32,
            count as u32,
            offset as u64,
            out as u32
        )
    );
    import!(linker, "fd_prestat_get", |w, m, fd: i32, out: i32| w
        .fd_prestat_get(m, fd as u32, out as u32));
    import!(
        linker,
        "fd_prestat_dir_name",
        |w, m, fd: i32, path: i32, len: i32| w.fd_prestat_dir_name(
            m,
            fd as u32,
            path as u32,
            len as u32
        )
    );
    import!(
        linker,
        "fd_pwrite",
        |w, m, fd: i32, iovs: i32, count: i32, offset: i64, out: i32| w.fd_pwrite(
            m,
            fd as u32,
            iovs as u32,
            count as u32,
            offset as u64,
            out as u32
        )
    );
    import!(
        linker,
        "fd_read",
        |w, m, fd: i32, iovs: i32, count: i32, out: i32| w.fd_read(
            m,
            fd as u32,
            iovs as u32,
            count as u32,
            out as u32
        )
    );
    import!(
        linker,
        "fd_readdir",
        |w, m, fd: i32, buf: i32, len: i32, cookie: i64, out: i32| w.fd_readdir(
            m,
            fd as u32,
            buf as u32,
            len as u32,
            cookie as u64,
            out as u32
        )
    );
    import!(linker, "fd_renumber", |w, m, from: i32, to: i32| w
        .fd_renumber(from as u32, to as u32));
    import!(
        linker,
        "fd_seek",
        |w, m, fd: i32, offset: i64, whence: i32, out: i32| w.fd_seek(
            m,
            fd as u32,
            offset,
            whence as u32,
            out as u32
        )
    );
    import!(linker, "fd_sync", |w, m, fd: i32| w.fd_sync(fd as u32));
    import!(linker, "fd_tell", |w, m, fd: i32, out: i32| w
        .fd_tell(m, fd as u32, out as u32));
    import!(
        linker,
        "fd_write",
        |w, m, fd: i32, iovs: i32, count: i32, out: i32| w.fd_write(
            m,
            fd as u32,
            iovs as u32,
            count as u32,
            out as u32
        )
    );
    import!(
        linker,
        "path_create_directory",
        |w, m, fd: i32, path: i32, len: i32| w.path_create_directory(
            m,
            fd as u32,
            path as u32,
            len as u32
        )
    );
    import!(
        linker,
        "path_filestat_get",
        |w, m, fd: i32, flags: i32, path: i32, len: i32, out: i32| w.path_filestat_get(
            m,
            fd as u32,
            flags as u32,
            path as u32,
            len as u32,
            out as u32
        )
    );
    import!(
        linker,
        "path_filestat_set_times",
        |w, m, fd: i32, flags: i32, path: i32, len: i32, atim: i64, mtim: i64, fst: i32| w
            .path_filestat_set_times(
                m,
                fd as u32,
                flags as u32,
                path as u32,
                len as u32,
                atim as u64,
                mtim as u64,
                fst as u32
            )
    );
    import!(
        linker,
        "path_link",
        |w,
         m,
         old_fd: i32,
         old_flags: i32,
         old_path: i32,
         old_len: i32,
         new_fd: i32,
         new_path: i32,
         new_len: i32| w.path_link(
            m,
            old_fd as u32,
            old_flags as u32,
            old_path as u32,
            old_len as u32,
            new_fd as u32,
            new_path as u32,
            new_len as u32
        )
    );
    import!(
        linker,
        "path_open",
        |w,
         m,
         fd: i32,
         dirflags: i32,
         path: i32,
         len: i32,
         oflags: i32,
         base: i64,
         inheriting: i64,
         fdflags: i32,
         out: i32| w.path_open(
            m,
            fd as u32,
            dirflags as u32,
            path as u32,
            len as u32,
            oflags as u32,
            base as u64,
            inheriting as u64,
            fdflags as u32,
            out as u32
        )
    );
    import!(
        linker,
        "path_readlink",
        |w, m, fd: i32, path: i32, len: i32, buf: i32, buf_len: i32, out: i32| w.path_readlink(
            m,
            fd as u32,
            path as u32,
            len as u32,
            buf as u32,
            buf_len as u32,
            out as u32
        )
    );
    import!(
        linker,
        "path_remove_directory",
        |w, m, fd: i32, path: i32, len: i32| w.path_remove_directory(
            m,
            fd as u32,
            path as u32,
            len as u32
        )
    );
    import!(
        linker,
        "path_rename",
        |w,
         m,
         old_fd: i32,
         old_path: i32,
         old_len: i32,
         new_fd: i32,
         new_path: i32,
         new_len: i32| w.path_rename(
            m,
            old_fd as u32,
            old_path as u32,
            old_len as u32,
            new_fd as u32,
            new_path as u32,
            new_len as u32
        )
    );
    import!(
        linker,
        "path_symlink",
        |w, m, old_path: i32, old_len: i32, fd: i32, new_path: i32, new_len: i32| w.path_symlink(
            m,
            old_path as u32,
            old_len as u32,
            fd as u32,
            new_path as u32,
            new_len as u32
        )
    );
    import!(
        linker,
        "path_unlink_file",
        |w, m, fd: i32, path: i32, len: i32| w.path_unlink_file(
            m,
            fd as u32,
            path as u32,
            len as u32
        )
    );
    import!(
        linker,
        "poll_oneoff",
        |w, m, subs: i32, events: i32, count: i32, out: i32| w.poll_oneoff(
            m,
            subs as u32,
            events as u32,
            count as u32,
            out as u32
        )
    );
    import!(linker, "proc_raise", |w, m, signal: i32| w
        .proc_raise(signal as u32));
    import!(linker, "random_get", |w, m, buf: i32, len: i32| w
        .random_get(m, buf as u32, len as u32));
    import!(linker, "sched_yield", |w, m| w.sched_yield());
    import!(
        linker,
        "sock_accept",
        |w, m, fd: i32, flags: i32, out: i32| w.sock_accept(m, fd as u32, flags as u32, out as u32)
    );
    import!(
        linker,
        "sock_recv",
        |w, m, fd: i32, data: i32, count: i32, flags: i32, out_len: i32, out_flags: i32| w
            .sock_recv(
                m,
                fd as u32,
                data as u32,
                count as u32,
                flags as u32,
                out_len as u32,
                out_flags as u32
            )
    );
    import!(
        linker,
        "sock_send",
        |w, m, fd: i32, data: i32, count: i32, flags: i32, out_len: i32| w.sock_send(
            m,
            fd as u32,
            data as u32,
            count as u32,
            flags as u32,
            out_len as u32
        )
    );
    import!(linker, "sock_shutdown", |w, m, fd: i32, how: i32| w
        .sock_shutdown(fd as u32, how as u32));

    // proc_exit does not return: it records the code and stops the instance.
    linker.func_wrap(
        MODULE,
        "proc_exit",
        |mut caller: Caller<'_, State<S>>, code: i32| -> Result<(), wasmi::Error> {
            caller.data_mut().wasi.proc_exit(code as u32);
            Err(wasmi::Error::i32_exit(code))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_follow_shell_conventions() {
        assert_eq!(RunError::FuelExhausted { budget: 1 }.exit_status(), 137);
        assert_eq!(RunError::MemoryLimit { max_pages: 1 }.exit_status(), 137);
        assert_eq!(
            RunError::StackExhausted { max_call_depth: 1 }.exit_status(),
            137
        );
        assert_eq!(RunError::Trap(String::new()).exit_status(), 134);
        assert_eq!(RunError::NoStart.exit_status(), 126);
        assert_eq!(RunError::InvalidModule(String::new()).exit_status(), 126);
    }

    #[test]
    fn errors_say_what_happened() {
        assert_eq!(
            RunError::MemoryLimit { max_pages: 16 }.to_string(),
            "stopped: linear memory would grow past the limit of 16 pages (1024 KiB)"
        );
        assert_eq!(
            RunError::OutOfMemory {
                pages: 16,
                wanted: 32
            }
            .to_string(),
            "stopped: linear memory could not grow from 16 to 32 pages (2048 KiB): \
             the heap it lives in is full"
        );
        assert_eq!(
            RunError::OutOfMemory {
                pages: 1,
                wanted: 2
            }
            .exit_status(),
            137
        );
        let unsupported = RunError::UnsupportedImport {
            module: "env".into(),
            name: "f".into(),
        };
        assert!(unsupported.to_string().contains("env.f"));
    }

    #[test]
    fn every_import_is_listed_once() {
        let mut names = IMPORTS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), IMPORTS.len());
        assert_eq!(IMPORTS.len(), 46);
    }
}
