//! Serves and releases one endpoint name over and over: every cycle
//! creates an endpoint in the nucleus and closes it, so a nucleus that
//! kept closed endpoints would run out of them (or grow without bound).
//! Every tenth cycle a calling end is connected and dropped too.
//! Arguments: `[CYCLES]` (default 1000).
#![no_std]
#![no_main]

extern crate alloc;

use guest_rt::clients::{connect, release, serve};
use guest_rt::println;

guest_rt::entry!(main);

fn main() -> i32 {
    let args = guest_rt::clients::start_info()
        .map(|info| info.args)
        .unwrap_or_default();
    let Some(cycles) = testers::rounds_argument(&args, 1000) else {
        return 2;
    };
    for cycle in 1..=cycles {
        let served = match serve("churn") {
            Ok(served) => served,
            Err(error) => {
                println!("cycle {cycle}: serve refused: {error:?}");
                return 1;
            }
        };
        // The name is this guest's now: a second serve is refused, and a
        // calling end can be had.
        if serve("churn").is_ok() {
            println!("cycle {cycle}: the name was served twice");
            return 1;
        }
        if cycle % 10 == 1 {
            match connect("churn", 1) {
                Ok(client) if release(client).is_ok() => {}
                other => {
                    println!("cycle {cycle}: connect and release failed: {other:?}");
                    return 1;
                }
            }
        }
        if let Err(error) = release(served) {
            println!("cycle {cycle}: release refused: {error:?}");
            return 1;
        }
        if cycle % 250 == 0 {
            println!("{cycle} endpoints served and closed");
        }
    }
    println!("done: {cycles} cycles");
    0
}
