//! Prints its arguments and the data region "greeting", then tries to write
//! to that region (read-only: the write stops it).
#![no_std]
#![no_main]

extern crate alloc;

use guest_rt::clients::{data, start_info};
use guest_rt::println;

guest_rt::entry!(main);

fn main() -> i32 {
    let info = start_info().expect("GuestControl.startInfo");
    println!("args: {:?}", info.args);
    let greeting = data("greeting")
        .expect("startInfo")
        .expect("a data region named greeting");
    println!(
        "greeting ({} bytes): {}",
        greeting.len(),
        core::str::from_utf8(greeting).unwrap_or("?").trim_end()
    );
    println!("writing to read-only data");
    // SAFETY: deliberately writing a read-only page; the nucleus stops this guest.
    unsafe { (greeting.as_ptr() as *mut u8).write_volatile(b'X') };
    println!("wrote read-only data");
    1
}
