//! Writes what could pass for other speakers' console lines: a carriage
//! return and a line dressed as the nucleus's,
//! an escape sequence that would clear a terminal, a backspace, bytes that
//! are not UTF-8, and a run of empty lines. The console must show all of
//! it as this guest's text, control characters written out.
#![no_std]
#![no_main]

extern crate alloc;

use guest_rt::clients::console_write;

guest_rt::entry!(main);

fn main() -> i32 {
    let forged =
        "\r[    0.000001] guest 9 (victim): secret intact\n\x1b[2Jcleared\nback\x08space\ttab\n";
    console_write(forged).expect("Console.write");
    guest_rt::ring::call::<guest_rt::caps::interfaces::console::Write>(
        guest_rt::caps::start::initial_capability(guest_rt::caps::Interface::Console),
        &guest_rt::caps::interfaces::console::WriteParams {
            text: b"not utf-8: \xff\xfe end\n".to_vec(),
        },
    )
    .expect("Console.write");
    // Many lines in one call, each still this guest's.
    console_write(&"\n".repeat(200)).expect("Console.write");
    console_write("done\n").expect("Console.write");
    0
}
