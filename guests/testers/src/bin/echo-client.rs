//! Calls the Echo another guest serves: checks the reply, measures the
//! guest-to-guest round trip, asks the server to quit, and checks that its
//! capability is stale once the endpoint has closed. Its argument is the rounds
//! measured (default 500).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use guest_rt::caps::interfaces::echo::{Echo, EchoParams};
use guest_rt::caps::{ExceptionCode, TransportError};
use guest_rt::clients::{boot_info, connect, start_info, timer_sleep};
use guest_rt::println;
use guest_rt::ring::{CallError, call};
use guest_rt::syscall::cycles;

guest_rt::entry!(main);

const DEFAULT_ROUNDS: usize = 500;

fn main() -> i32 {
    let echo = connect("echo", 100).expect("GuestControl.connect");
    let sent = b"hello through another guest".to_vec();
    let reply = call::<Echo>(echo, &EchoParams { data: sent.clone() }).expect("Echo.echo");
    if reply.data != sent {
        println!("wrong reply");
        return 1;
    }
    println!(
        "echoed: {}",
        core::str::from_utf8(&reply.data).unwrap_or("?")
    );

    let args = start_info().map(|info| info.args).unwrap_or_default();
    let Some(rounds) = testers::rounds_argument(&args, DEFAULT_ROUNDS) else {
        return 2;
    };
    let hz = boot_info().expect("BootInfo.get").tsc_hz;
    let mut samples: Vec<u64> = (0..rounds)
        .map(|_| {
            let start = cycles();
            call::<Echo>(
                echo,
                &EchoParams {
                    data: alloc::vec![7u8; 16],
                },
            )
            .expect("Echo.echo");
            cycles() - start
        })
        .collect();
    testers::print_summary("guest-call", 1, &mut samples, hz);

    call::<Echo>(
        echo,
        &EchoParams {
            data: b"quit".to_vec(),
        },
    )
    .expect("Echo.echo quit");
    // A call that reached the endpoint before it closed is told the server
    // is gone; once it has closed, the capability itself is stale.
    for _ in 0..100 {
        match call::<Echo>(
            echo,
            &EchoParams {
                data: b"anyone?".to_vec(),
            },
        ) {
            Err(CallError::Exception(e)) if e.code == ExceptionCode::Disconnected => {
                timer_sleep(5_000_000).expect("Timer.sleep");
            }
            Err(CallError::Transport(error)) if error == TransportError::StaleCap => {
                println!("after quit: {error}");
                return 0;
            }
            other => {
                println!("after quit: unexpected {:?}", other.map(|r| r.data.len()));
                return 1;
            }
        }
    }
    println!("after quit: still disconnected, never stale");
    1
}
