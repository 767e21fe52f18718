//! The log: every line goes to COM1 and to the framebuffer console, prefixed
//! with the time since nucleus entry (from the TSC).

use core::fmt::{self, Write};

use spin::Mutex;
use uart_16550::SerialPort;

use crate::fb::FramebufferConsole;

struct Console {
    serial: Option<SerialPort>,
    framebuffer: Option<FramebufferConsole>,
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(serial) = &mut self.serial {
            for byte in s.bytes() {
                if byte == b'\n' {
                    serial.send_raw(b'\r');
                }
                serial.send_raw(byte);
            }
        }
        if let Some(fb) = &mut self.framebuffer {
            fb.write_str(s);
        }
        Ok(())
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    serial: None,
    framebuffer: None,
});

/// Brings up COM1. On a machine without a serial port the writes go nowhere
/// (a missing UART reads back as "transmitter empty"), so this never hangs.
pub fn init_serial() {
    // SAFETY: 0x3f8 is COM1's standard I/O base; nothing else drives it.
    let mut port = unsafe { SerialPort::new(0x3f8) };
    port.init();
    // Firmware may have left a partial line (UEFI leaves terminal escapes):
    // start the log on a line of its own.
    port.send_raw(b'\r');
    port.send_raw(b'\n');
    CONSOLE.lock().serial = Some(port);
}

pub fn attach_framebuffer(fb: FramebufferConsole) {
    CONSOLE.lock().framebuffer = Some(fb);
}

/// From here on, only the outputs the appliance asked for.
pub fn select(outputs: caps::manifest::Console) {
    use caps::manifest::Console::{Framebuffer, Serial};
    let mut console = CONSOLE.lock();
    match outputs {
        Serial => console.framebuffer = None,
        Framebuffer => console.serial = None,
        _ => {}
    }
}

/// Writes `args` as-is (no timestamp). Interrupts stay off while the lock is
/// held so an interrupt handler can never spin on a lock its CPU holds.
pub fn print(args: fmt::Arguments) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let _ = CONSOLE.lock().write_fmt(args);
    });
}

/// One log line: `[seconds.micros] message`.
pub fn log(args: fmt::Arguments) {
    print(format_args!("[{}] {}\n", crate::time::since_entry(), args));
}

/// For the fatal paths (exception report, panic): the faulting code may have
/// held the console lock, and it is never coming back, so take it anyway.
pub fn log_fatal(args: fmt::Arguments) {
    if CONSOLE.is_locked() {
        // SAFETY: this CPU is stopping for good with interrupts off (the only
        // CPU running), so the holder will never touch the console again.
        unsafe { CONSOLE.force_unlock() };
    }
    log(args);
}

#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::console::log(format_args!($($arg)*)) };
}
