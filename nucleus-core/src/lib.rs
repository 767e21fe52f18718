//! The nucleus's pure logic: everything that needs no hardware, tested on the
//! host. The `nucleus` crate wires these pieces to the machine.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod allowance;
pub mod cmdline;
pub mod console_text;
pub mod dispatch;
pub mod endpoint;
pub mod frames;
pub mod memmap;
pub mod paging;
pub mod pkeys;
pub mod qemu;
pub mod rate;
pub mod run_queue;
pub mod time;
pub mod traps;
