//! Tries to make the nucleus its deputy: every kind of buffer an SQE names
//! (params, results, RECV buffers, RETURN replies, capability ids) pointed
//! at the victim guest's secrets, at the nucleus, past its own memory's end
//! and round the top of the address space. The nucleus copies guest memory
//! with every protection key open, so only its range check stands between
//! these requests and the victim's bytes: each must be refused with `-5
//! BufferOutsideCaller`, and the victim finds its 4 KiB intact.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;

use guest_rt::caps::interfaces::echo::{ECHO, EchoParams, EchoResults};
use guest_rt::caps::interfaces::{console, entropy, timer};
use guest_rt::caps::rights::endpoint::CLIENT;
use guest_rt::caps::start::initial_capability;
use guest_rt::caps::{Buffer, Interface, Message, Outcome, Sqe, TransportError};
use guest_rt::clients::{mint, region, serve};
use guest_rt::println;
use guest_rt::ring::{buffer, buffer_mut, with_ring};
use testers::victim_secrets;

guest_rt::entry!(main);

fn outcome(sqe: Sqe) -> Outcome {
    with_ring(|ring| ring.submit_and_wait(sqe)).outcome()
}

fn main() -> i32 {
    let secrets = victim_secrets();
    let treasure = Buffer::new(secrets.treasure, secrets.treasure_len as u32);
    let (base, size) = region().expect("GuestControl.region");
    let server = serve("deputy").expect("GuestControl.serve");
    let own_end = mint(server, 1, CLIENT).expect("Endpoint.mint");
    let victim = guest_rt::clients::connect("victim", 1).expect("connect victim");

    let mut fill = vec![0u8; 64];
    let fill_len = entropy::FillParams { length: 4096 }
        .encode(&mut fill)
        .expect("fits");
    let fill = Buffer::new(fill.as_ptr() as u64, fill_len as u32);
    let mut own = vec![0u8; 256];
    let own = buffer_mut(&mut own);
    let console = initial_capability(Interface::Console).raw();
    let timer = initial_capability(Interface::Timer).raw();
    let entropy = initial_capability(Interface::Entropy).raw();

    let attempts = [
        (
            "Console.write reading the victim's bytes",
            Sqe::call(console, console::WRITE, treasure, own, 0),
        ),
        (
            "Timer.now writing its results over them",
            Sqe::call(timer, timer::NOW, Buffer::NONE, treasure, 0),
        ),
        (
            "Entropy.fill writing 4 KiB over them",
            Sqe::call(entropy, entropy::FILL, fill, treasure, 0),
        ),
        (
            "a call to the victim with its reply going over them",
            Sqe::call(victim.raw(), ECHO, Buffer::NONE, treasure, 0),
        ),
        (
            "a RECV taking a call into them",
            Sqe::recv(server.raw(), treasure, 0),
        ),
        (
            "capability ids read from them",
            Sqe::call(own_end.raw(), ECHO, Buffer::new(treasure.addr, 8), own, 0)
                .carrying_caps(2, false),
        ),
        (
            "params running past the end of its own memory",
            Sqe::call(
                console,
                console::WRITE,
                Buffer::new(base + size - 16, 64),
                own,
                0,
            ),
        ),
        (
            "results in the nucleus's half",
            Sqe::call(
                timer,
                timer::NOW,
                Buffer::NONE,
                Buffer::new(0xffff_8000_0000_1000, 64),
                0,
            ),
        ),
        (
            "a buffer wrapping round the address space",
            Sqe::call(
                timer,
                timer::NOW,
                Buffer::NONE,
                Buffer::new(u64::MAX - 7, 16),
                0,
            ),
        ),
    ];
    let mut refused = 0;
    for (what, sqe) in attempts {
        let answer = outcome(sqe);
        let ok = answer == Outcome::Failed(TransportError::BufferOutsideCaller);
        println!("{}: {what} -> {answer:?}", if ok { "ok" } else { "FAILED" });
        refused += ok as usize;
    }

    // A RETURN whose reply lies in the victim's memory: a call to itself,
    // taken into its own buffer, answered from the victim's bytes.
    let mut params = vec![0u8; 64];
    let len = EchoParams { data: vec![1; 8] }
        .encode(&mut params)
        .expect("fits");
    let mut results = vec![0u8; 256];
    let call = Sqe::call(
        own_end.raw(),
        ECHO,
        buffer(&params[..len]),
        buffer_mut(&mut results),
        0,
    );
    with_ring(|ring| ring.submit(call));
    let mut taken = vec![0u8; 256];
    let token = match outcome(Sqe::recv(server.raw(), buffer_mut(&mut taken), 0)) {
        Outcome::Done { aux, .. } => aux,
        other => {
            println!("FAILED: its own call did not arrive: {other:?}");
            return 1;
        }
    };
    let answer = outcome(Sqe::return_call(server.raw(), token, treasure, 0));
    let ok = answer == Outcome::Failed(TransportError::BufferOutsideCaller);
    println!(
        "{}: a RETURN replying with the victim's bytes -> {answer:?}",
        if ok { "ok" } else { "FAILED" }
    );
    refused += ok as usize;
    let mut reply = vec![0u8; 64];
    let len = EchoResults { data: vec![] }
        .encode(&mut reply)
        .expect("fits");
    let answered = outcome(Sqe::return_call(
        server.raw(),
        token,
        buffer(&reply[..len]),
        0,
    ));
    println!("its own call answered from its own memory -> {answered:?}");
    println!("{refused} of 10 attempts refused with -5");
    0
}
