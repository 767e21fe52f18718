//! Holds a secret and tells the attack guests where it and a function that
//! reads it are (through its "victim" endpoint). After three attackers
//! have asked and had time to attack, it checks the secret is unchanged.
#![no_std]
#![no_main]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};

use guest_rt::caps::interfaces::echo::EchoResults;
use guest_rt::clients::{Server, serve, timer_sleep};
use guest_rt::println;

guest_rt::entry!(main);

const SECRET_VALUE: u64 = 0x5ec2_e75e_c2e7_5ec2;
static SECRET: AtomicU64 = AtomicU64::new(SECRET_VALUE);

/// Reads the secret: what the jumping attacker executes.
#[inline(never)]
extern "C" fn read_secret() -> u64 {
    SECRET.load(Ordering::Relaxed)
}

fn main() -> i32 {
    let mut server = Server::new(serve("victim").expect("GuestControl.serve"));
    let mut where_ = alloc::vec::Vec::new();
    where_.extend_from_slice(&(SECRET.as_ptr() as u64).to_le_bytes());
    where_.extend_from_slice(&(read_secret as *const () as u64).to_le_bytes());
    println!("secret at {:#x}", SECRET.as_ptr() as u64);
    for _ in 0..3 {
        let token = server.receive().expect("RECV").token;
        server
            .reply(
                token,
                &EchoResults {
                    data: where_.clone(),
                },
            )
            .expect("RETURN");
    }
    timer_sleep(300_000_000).expect("Timer.sleep");
    if read_secret() == SECRET_VALUE {
        println!("secret intact");
        0
    } else {
        println!("secret CHANGED");
        1
    }
}
