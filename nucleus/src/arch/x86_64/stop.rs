//! Ending a run: halt for good, or, in test images (`qemu-exit` on the
//! command line), leave QEMU through `isa-debug-exit` with the result.

use core::sync::atomic::{AtomicBool, Ordering};

use nucleus_core::qemu::{DEBUG_EXIT_PORT, ExitCode};
use x86_64::instructions::port::Port;

static QEMU_EXIT: AtomicBool = AtomicBool::new(false);

pub fn enable_qemu_exit() {
    QEMU_EXIT.store(true, Ordering::Relaxed);
}

pub fn stop(code: ExitCode) -> ! {
    x86_64::instructions::interrupts::disable();
    if QEMU_EXIT.load(Ordering::Relaxed) {
        // SAFETY: only enabled by `qemu-exit`, which test images pass to a
        // QEMU started with `-device isa-debug-exit,iobase=0xf4`.
        unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code as u32) };
    }
    loop {
        x86_64::instructions::hlt();
    }
}
