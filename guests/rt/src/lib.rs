//! The native guest runtime: the entry point the nucleus jumps to, the heap,
//! system calls, the ring client and typed clients for the nucleus's
//! interfaces (the network's and the volumes' among them), and panic
//! reporting through Console.
//!
//! A guest is a static position-independent ELF for `x86_64-unknown-none`
//! (see `guests/README.md` for how one is built). It names its main function
//! with [`entry!`]; main returns the exit code.
#![no_std]

extern crate alloc;

pub mod clients;
pub mod files;
pub mod heap;
pub mod net;
pub mod ring;
pub mod syscall;

pub use caps;

/// Declares the guest's main function: `fn() -> i32`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The ELF entry point. The nucleus passes the ring address, the
        /// heap start and the heap size in RDI, RSI, RDX.
        #[unsafe(no_mangle)]
        pub extern "C" fn _start(ring: u64, heap_start: u64, heap_size: u64) -> ! {
            $crate::start(ring, heap_start, heap_size, $main)
        }
    };
}

#[doc(hidden)]
pub fn start(ring: u64, heap_start: u64, heap_size: u64, main: fn() -> i32) -> ! {
    heap::init(heap_start, heap_size);
    ring::attach(ring);
    syscall::exit(main())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let text = match info.location() {
        Some(at) => alloc::format!(
            "panicked at {}:{}: {}\n",
            at.file(),
            at.line(),
            info.message()
        ),
        None => alloc::format!("panicked: {}\n", info.message()),
    };
    let _ = clients::console_write(&text);
    syscall::exit(101)
}
