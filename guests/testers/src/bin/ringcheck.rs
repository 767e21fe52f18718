//! Submits a malformed SQE of every kind and checks that each completes with
//! its documented transport error, then that the ring still works.
#![no_std]
#![no_main]

extern crate alloc;

use guest_rt::caps::interfaces::{boot_info, console};
use guest_rt::caps::start::{SYSCALL_CAP_ENTER, initial_capability};
use guest_rt::caps::{Buffer, CapId, Interface, Message, Outcome, Sqe, TransportError};
use guest_rt::ring::{buffer, buffer_mut, with_ring};
use guest_rt::{clients, println};

guest_rt::entry!(main);

/// A constant in the guest's read-only data: a results buffer here is refused.
static READ_ONLY: [u8; 64] = [0; 64];

fn submit(sqe: Sqe) -> Outcome {
    with_ring(|ring| ring.submit_and_wait(sqe)).outcome()
}

fn main() -> i32 {
    let console_cap = initial_capability(Interface::Console).raw();
    let boot_cap = initial_capability(Interface::BootInfo).raw();
    let entropy_cap = initial_capability(Interface::Entropy);
    let mut text = alloc::vec![0u8; 64];
    let length = console::WriteParams {
        text: b"ringcheck\n".to_vec(),
    }
    .encode(&mut text)
    .unwrap();
    text.truncate(length);
    let mut results = alloc::vec![0u8; 256];
    let good_call = |results: &mut [u8]| {
        Sqe::call(
            console_cap,
            console::WRITE,
            buffer(&text),
            buffer_mut(results),
            0,
        )
    };

    let mut checks: alloc::vec::Vec<(&str, Sqe, TransportError)> = alloc::vec::Vec::new();
    let mut sqe = Sqe::nop(0);
    sqe.opcode = 9;
    checks.push(("unknown opcode", sqe, TransportError::UnknownOpcode));
    let mut sqe = Sqe::nop(0);
    sqe.flags = 1;
    checks.push(("non-zero flags", sqe, TransportError::ReservedNotZero));
    checks.push((
        "more than 8 capabilities sent",
        good_call(&mut results).carrying_caps(9, false),
        TransportError::MessageTooLarge,
    ));
    let mut sqe = good_call(&mut results);
    sqe.reserved2 = 5;
    checks.push((
        "non-zero reserved word",
        sqe,
        TransportError::ReservedNotZero,
    ));
    checks.push((
        "never-allocated capability",
        Sqe::call(
            CapId::new(200, 1).unwrap().raw(),
            0,
            Buffer::NONE,
            Buffer::NONE,
            0,
        ),
        TransportError::InvalidCap,
    ));
    checks.push((
        "params in nucleus memory",
        Sqe::call(
            console_cap,
            console::WRITE,
            Buffer::new(0xffff_ffff_8000_0000, 64),
            buffer_mut(&mut results),
            0,
        ),
        TransportError::BufferOutsideCaller,
    ));
    checks.push((
        "results in read-only memory",
        Sqe::call(
            boot_cap,
            boot_info::GET,
            Buffer::NONE,
            Buffer::new(READ_ONLY.as_ptr() as u64, 64),
            0,
        ),
        TransportError::BufferOutsideCaller,
    ));
    checks.push((
        "params past the end of the address space",
        Sqe::call(
            console_cap,
            console::WRITE,
            Buffer::new(u64::MAX - 8, 64),
            Buffer::NONE,
            0,
        ),
        TransportError::BufferOutsideCaller,
    ));
    checks.push((
        "oversized params",
        Sqe::call(
            console_cap,
            console::WRITE,
            Buffer::new(text.as_ptr() as u64, 65_537),
            Buffer::NONE,
            0,
        ),
        TransportError::MessageTooLarge,
    ));
    checks.push((
        "unknown method",
        Sqe::call(console_cap, 9, buffer(&text), buffer_mut(&mut results), 0),
        TransportError::UnknownMethod,
    ));
    let garbage = [0xffu8; 24];
    checks.push((
        "malformed params",
        Sqe::call(
            console_cap,
            console::WRITE,
            buffer(&garbage),
            buffer_mut(&mut results),
            0,
        ),
        TransportError::MalformedMessage,
    ));
    let mut tiny = [0u8; 8];
    checks.push((
        "results buffer too small",
        Sqe::call(
            boot_cap,
            boot_info::GET,
            Buffer::NONE,
            buffer_mut(&mut tiny),
            0,
        ),
        TransportError::ResultsTooSmall,
    ));
    checks.push((
        "RECV on a capability that is not an endpoint",
        Sqe::recv(console_cap, buffer_mut(&mut results), 0),
        TransportError::WrongCapKind,
    ));

    let mut failures = 0;
    for (what, sqe, expected) in checks.iter() {
        let outcome = submit(*sqe);
        if outcome == Outcome::Failed(*expected) {
            println!("ok: {what} -> {} ({})", expected.code(), expected);
        } else {
            println!("FAILED: {what}: expected {expected:?}, got {outcome:?}");
            failures += 1;
        }
    }

    // A released capability's id goes stale.
    let released = submit(Sqe::release(entropy_cap.raw(), 0));
    let stale = submit(Sqe::call(
        entropy_cap.raw(),
        0,
        Buffer::NONE,
        buffer_mut(&mut results),
        0,
    ));
    if released
        == (Outcome::Done {
            written: 0,
            aux: 0,
            caps: 0,
        })
        && stale == Outcome::Failed(TransportError::StaleCap)
    {
        println!(
            "ok: released capability -> {} ({})",
            TransportError::StaleCap.code(),
            TransportError::StaleCap
        );
    } else {
        println!("FAILED: release then call: {released:?}, {stale:?}");
        failures += 1;
    }

    // An unknown system call number answers NotSupported.
    let answer = guest_rt::syscall::raw(SYSCALL_CAP_ENTER + 40, 0, 0);
    if answer == TransportError::NotSupported.code() as i64 {
        println!("ok: unknown system call -> {answer}");
    } else {
        println!("FAILED: unknown system call answered {answer}");
        failures += 1;
    }

    // Entering the nucleus with the nested-task flag set (POPF lets ring 3
    // set it) must not upset the nucleus's own return path.
    // SAFETY: sets RFLAGS.NT, which only matters to IRET; then a NOP round trip.
    unsafe { core::arch::asm!("pushfq", "or qword ptr [rsp], 0x4000", "popfq") };
    let with_nt = guest_rt::syscall::cap_enter(0, 0);
    // SAFETY: clears RFLAGS.NT again.
    unsafe { core::arch::asm!("pushfq", "and qword ptr [rsp], ~0x4000", "popfq") };
    if with_nt >= 0 {
        println!("ok: system call with the nested-task flag set -> {with_nt}");
    } else {
        println!("FAILED: system call with NT set answered {with_nt}");
        failures += 1;
    }

    // The ring and the nucleus still work.
    let nop = submit(Sqe::nop(0));
    let alive =
        clients::console_write("ringcheck: ring still works after every malformed request\n")
            .is_ok();
    if nop
        != (Outcome::Done {
            written: 0,
            aux: 0,
            caps: 0,
        })
        || !alive
    {
        failures += 1;
    }
    println!("ringcheck: {} checks, {failures} failed", checks.len() + 4);
    failures
}
