//! A server for the call-limit tests, in one of two modes (its first
//! argument, default "sink"):
//!
//! - "sink" serves Echo under "sink" but takes no call for its first two
//!   seconds, so calls pile up in the nucleus; then it answers each with
//!   empty data, and exits after answering "quit", saying how many calls
//!   it took from the hoarder's "leaver" (which exited before: none).
//! - "stuck" serves Echo under "stuck" with a 256-byte RECV buffer and
//!   never answers, until a call sends "done": then it RETURNs the first
//!   call it took (whose caller gave it up long before), answers "done"
//!   and exits, with any call it took after the first still unanswered.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use guest_rt::caps::interfaces::echo::{ECHO, EchoParams, EchoResults};
use guest_rt::caps::{Message, TransportError};
use guest_rt::clients::{Server, serve, start_info, timer_sleep};
use guest_rt::println;
use guest_rt::ring::CallError;

guest_rt::entry!(main);

fn sink() -> i32 {
    let mut server = Server::new(serve("sink").expect("GuestControl.serve"));
    println!("serving sink; taking calls in 2 s");
    timer_sleep(2_000_000_000).expect("Timer.sleep");
    let mut served = 0u64;
    let mut from_the_gone = 0u64;
    loop {
        let call = server.receive().expect("RECV");
        let token = call.token;
        let data = EchoParams::decode(call.params).map(|p| p.data);
        let quit = data.as_ref().is_ok_and(|d| d == b"quit");
        from_the_gone += data.as_ref().is_ok_and(|d| d == testers::LEAVER_DATA) as u64;
        served += 1;
        server
            .reply(token, &EchoResults { data: Vec::new() })
            .expect("RETURN");
        if quit {
            println!("answered {served} calls; quitting");
            println!("calls taken from a guest that had exited: {from_the_gone}");
            return 0;
        }
    }
}

fn stuck() -> i32 {
    let mut server = Server::with_buffer(serve("stuck").expect("GuestControl.serve"), 256);
    println!("serving stuck; answering nothing");
    let mut first: Option<u64> = None;
    let mut taken = 0u64;
    loop {
        let call = server.receive().expect("RECV");
        let token = call.token;
        let done =
            call.method == ECHO && EchoParams::decode(call.params).is_ok_and(|p| p.data == b"done");
        taken += 1;
        if !done {
            first.get_or_insert(token);
            continue;
        }
        let late = first.map(|token| server.reply(token, &EchoResults { data: Vec::new() }));
        let refused = matches!(
            late,
            Some(Err(CallError::Transport(TransportError::InvalidCap)))
        );
        println!(
            "{}: took {taken} calls; a RETURN for one its caller gave up -> -3",
            if refused { "ok" } else { "FAILED" }
        );
        server
            .reply(token, &EchoResults { data: Vec::new() })
            .expect("RETURN");
        return 0;
    }
}

fn main() -> i32 {
    let args = start_info().map(|info| info.args).unwrap_or_default();
    match args.first().map(|a| a.as_str()) {
        Some("stuck") => stuck(),
        _ => sink(),
    }
}
