//! Exercises capabilities that name objects against the `sessions` guest
//! serving "sessions" (restarted once on failure) and another serving
//! "relay": badges that tell callers apart, rights that refuse, a
//! capability passed to another guest and revoked when its object dies,
//! names the appliance does not grant, and a name kept for its restarting
//! server. Each check prints "ok: ..." or "FAILED: ..."; the exit code is
//! the number that failed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use guest_rt::caps::interfaces::sessions::{
    Give, GiveParams, Open, OpenParams, Probe, ProbeParams, Stop, StopParams, Whoami, WhoamiParams,
};
use guest_rt::caps::rights::endpoint::CALL as RIGHT_CALL;
use guest_rt::caps::{CapId, ExceptionCode, Rights, TransportError};
use guest_rt::clients::{connect, release, serve, timer_sleep};
use guest_rt::println;
use guest_rt::ring::{CallError, call, call_with_caps};

guest_rt::entry!(main);

struct Checks {
    failed: i32,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool, detail: String) {
        if ok {
            println!("ok: {what}");
        } else {
            println!("FAILED: {what}: {detail}");
            self.failed += 1;
        }
    }
}

fn open(sessions: CapId, rights: Rights) -> Result<CapId, CallError> {
    let (_, caps) = call_with_caps::<Open>(
        sessions,
        &OpenParams {
            rights: rights.bits(),
        },
        &[],
        false,
    )?;
    caps.first()
        .copied()
        .ok_or(CallError::Transport(TransportError::MalformedMessage))
}

fn whoami(cap: CapId) -> Result<u64, CallError> {
    call::<Whoami>(cap, &WhoamiParams).map(|r| r.badge)
}

fn transport(result: &Result<impl core::fmt::Debug, CallError>) -> Option<TransportError> {
    match result {
        Err(CallError::Transport(error)) => Some(*error),
        _ => None,
    }
}

fn exception(result: &Result<CapId, CallError>) -> Option<ExceptionCode> {
    match result {
        Err(CallError::Exception(e)) => Some(e.code),
        _ => None,
    }
}

fn main() -> i32 {
    let mut checks = Checks { failed: 0 };
    let front = connect("sessions", 200).expect("connect sessions");
    let relay = connect("relay", 200).expect("connect relay");
    let all = Rights::TRANSFER.union(RIGHT_CALL);

    let front_badge = whoami(front);
    checks.check(
        "the front door has badge 0",
        matches!(front_badge, Ok(0)),
        alloc::format!("{front_badge:?}"),
    );
    let a = open(front, all).expect("open a");
    let b = open(front, all).expect("open b");
    let (badge_a, badge_b) = (whoami(a), whoami(b));
    checks.check(
        "each session has a badge of its own",
        matches!((&badge_a, &badge_b), (Ok(x), Ok(y)) if *x != *y && *x != 0 && *y != 0),
        alloc::format!("{badge_a:?} {badge_b:?}"),
    );
    println!(
        "sessions have badges {} and {}",
        badge_a.as_ref().unwrap_or(&0),
        badge_b.as_ref().unwrap_or(&0)
    );

    let no_call = open(front, Rights::TRANSFER).expect("open without call");
    let refused = whoami(no_call);
    checks.check(
        "a call without the call right -> -13",
        transport(&refused) == Some(TransportError::MissingRight),
        alloc::format!("{refused:?}"),
    );
    let no_transfer = open(front, RIGHT_CALL).expect("open without transfer");
    let passed = call_with_caps::<Give>(relay, &GiveParams, &[no_transfer], false);
    checks.check(
        "passing a capability without the transfer right -> -13",
        transport(&passed) == Some(TransportError::MissingRight),
        alloc::format!("{:?}", passed.map(|(r, _)| r.badge)),
    );
    let forged = call_with_caps::<Give>(relay, &GiveParams, &[CapId::new(200, 9).unwrap()], false);
    checks.check(
        "passing a capability this guest does not hold -> -3",
        transport(&forged) == Some(TransportError::InvalidCap),
        alloc::format!("{:?}", forged.map(|(r, _)| r.badge)),
    );

    let given = call_with_caps::<Give>(relay, &GiveParams, &[a], false);
    let expected = badge_a.as_ref().copied().unwrap_or(u64::MAX);
    checks.check(
        "a copy passed to the relay calls with the badge it was minted with",
        matches!(&given, Ok((r, _)) if r.badge == expected),
        alloc::format!("{:?}", given.map(|(r, _)| r.badge)),
    );
    checks.check(
        "the copy left this guest's own working",
        whoami(a).ok() == Some(expected),
        String::new(),
    );
    let moved = call_with_caps::<Give>(relay, &GiveParams, &[b], true);
    checks.check(
        "a moved capability reaches the relay",
        moved.is_ok(),
        alloc::format!("{:?}", moved.map(|(r, _)| r.badge)),
    );
    let after_move = whoami(b);
    checks.check(
        "a moved capability is stale here -> -4",
        transport(&after_move) == Some(TransportError::StaleCap),
        alloc::format!("{after_move:?}"),
    );

    // Results naming more capabilities than this guest's table can take:
    // refused whole, and the table stays usable.
    let mut opened = alloc::vec::Vec::new();
    let full = loop {
        match open(front, all) {
            Ok(session) => opened.push(session),
            Err(error) => break error,
        }
        if opened.len() > 1000 {
            break CallError::Transport(TransportError::NotSupported);
        }
    };
    checks.check(
        "opening sessions until the table is full -> -10",
        matches!(full, CallError::Transport(TransportError::CapQuotaExceeded)),
        alloc::format!("{full} after {}", opened.len()),
    );
    let held = opened.len();
    for session in opened {
        release(session).expect("release");
    }
    let after = open(front, all).and_then(|s| release(s).map(|()| s));
    checks.check(
        "released capabilities make room again",
        after.is_ok(),
        alloc::format!("{} held before; {:?}", held, after.map(|c| c.raw())),
    );

    let taken = serve("sessions");
    checks.check(
        "serving a name the appliance gives another guest -> exception denied",
        exception(&taken) == Some(ExceptionCode::Denied),
        alloc::format!("{:?}", taken.map(|c| c.raw())),
    );
    let ungranted = connect("nobody-grants-this", 1);
    checks.check(
        "connecting to a name not in connects -> exception denied",
        exception(&ungranted) == Some(ExceptionCode::Denied),
        alloc::format!("{:?}", ungranted.map(|c| c.raw())),
    );

    // The sessions server fails (exit 3) and is restarted.
    call::<Stop>(front, &StopParams { code: 3 }).expect("stop");
    let mut revoked = whoami(a);
    for _ in 0..200 {
        if transport(&revoked) == Some(TransportError::StaleCap) {
            break;
        }
        // Delivered before the server went away: disconnected; try again.
        timer_sleep(5_000_000).expect("sleep");
        revoked = whoami(a);
    }
    checks.check(
        "a session of the stopped server is stale -> -4",
        transport(&revoked) == Some(TransportError::StaleCap),
        alloc::format!("{revoked:?}"),
    );
    let taken = serve("sessions");
    checks.check(
        "the name stays its server's while it restarts -> exception denied",
        exception(&taken) == Some(ExceptionCode::Denied),
        alloc::format!("{:?}", taken.map(|c| c.raw())),
    );
    let probe = call::<Probe>(relay, &ProbeParams).map(|r| r.result);
    checks.check(
        "the relay's copy died with its object -> -4",
        probe.as_ref().ok() == Some(&TransportError::StaleCap.code()),
        alloc::format!("{probe:?}"),
    );
    let again = connect("sessions", 300).expect("connect to the restarted server");
    let fresh = whoami(again);
    checks.check(
        "the restarted server serves the name again",
        matches!(fresh, Ok(0)),
        alloc::format!("{fresh:?}"),
    );

    let _ = call::<Stop>(again, &StopParams { code: 0 });
    let _ = call::<Stop>(relay, &StopParams { code: 0 });
    println!("{} checks failed", checks.failed);
    checks.failed
}
