//! Tries to make the nucleus hold too much for it, and to wedge servers,
//! through the call limits (against `sink` in both modes). With the
//! argument "patient" it is instead the other client: one call to "sink"
//! while the hoarder's flood waits there, which must be answered. With
//! "leaver", it leaves calls waiting at "sink" and exits.
//!
//! Each check prints "ok: ..." or "FAILED: ...".
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;

use guest_rt::caps::interfaces::echo::{ECHO, Echo, EchoParams};
use guest_rt::caps::{CapId, Cqe, Exception, ExceptionCode, Message, Outcome, Sqe, TransportError};
use guest_rt::clients::{connect, start_info, timer_sleep};
use guest_rt::println;
use guest_rt::ring::{CallError, buffer, buffer_mut, call, with_ring};
use guest_rt::syscall;

guest_rt::entry!(main);

/// Calls of 64 KiB (less the framing) that fill the nucleus's allowance
/// for this guest (1 MiB) by the 16th.
const BIG_DATA: usize = 65536 - 64;
const FILLING: usize = 16;
/// Calls one client may have waiting at one endpoint.
const PER_CLIENT: usize = 32;
/// Calls the stuck server is given and each given up after a timeout:
/// more than the completion queue holds.
const GIVEN_UP: usize = 600;

fn report(ok: bool, what: &str) {
    println!("{}: {what}", if ok { "ok" } else { "FAILED" });
}

fn encoded(data: Vec<u8>) -> Vec<u8> {
    let mut bytes = vec![0u8; 65536];
    let len = EchoParams { data }.encode(&mut bytes).expect("fits");
    bytes.truncate(len);
    bytes
}

/// Submits Echo on `cap` without waiting; the nucleus takes it now.
fn submit_echo(cap: CapId, params: &[u8], results: &mut [u8]) -> u64 {
    let sqe = Sqe::call(cap.raw(), ECHO, buffer(params), buffer_mut(results), 0);
    let user_data = with_ring(|ring| ring.submit(sqe));
    syscall::cap_enter(0, 0);
    user_data
}

/// Every completion that has arrived, without waiting.
fn arrived(into: &mut Vec<Cqe>) {
    while let Some(cqe) = with_ring(|ring| ring.next_completion(0)) {
        into.push(cqe);
    }
}

/// Waits up to `timeout_ns` for the completion of `user_data`, keeping
/// others that come meanwhile in `seen`.
fn wait_for(user_data: u64, timeout_ns: u64, seen: &mut Vec<Cqe>) -> Option<Cqe> {
    if let Some(at) = seen.iter().position(|c| c.user_data == user_data) {
        return Some(seen.remove(at));
    }
    loop {
        let cqe = with_ring(|ring| ring.next_completion(timeout_ns))?;
        if cqe.user_data == user_data {
            return Some(cqe);
        }
        seen.push(cqe);
    }
}

/// CANCELs the calls with `target` as their user data: how many it gave up.
fn cancel(target: u64, seen: &mut Vec<Cqe>) -> i32 {
    let user_data = with_ring(|ring| ring.submit(Sqe::cancel(target, 0)));
    match wait_for(user_data, u64::MAX, seen).map(|c| c.outcome()) {
        Some(Outcome::Done { written, .. }) => written as i32,
        other => {
            println!("CANCEL answered {other:?}");
            -1
        }
    }
}

/// The exception a completion carries in `results`, if it does.
fn exception(cqe: &Cqe, results: &[u8]) -> Option<Exception> {
    match cqe.outcome() {
        Outcome::Exception { len } => Exception::decode(&results[..len as usize]).ok(),
        _ => None,
    }
}

fn overloaded_saying(cqe: Option<&Cqe>, results: &[u8], words: &str) -> bool {
    let Some(exception) = cqe.and_then(|cqe| exception(cqe, results)) else {
        return false;
    };
    println!("refused: {}", exception.message);
    exception.code == ExceptionCode::Overloaded && exception.message.contains(words)
}

fn patient() -> i32 {
    let sink = connect("sink", 200).expect("connect sink");
    // The hoarder has flooded by now, and holds its calls for a while.
    timer_sleep(500_000_000).expect("Timer.sleep");
    match call::<Echo>(sink, &EchoParams { data: vec![3; 8] }) {
        Ok(_) => report(true, "answered while another client flooded the server"),
        Err(error) => report(false, &alloc::format!("the call failed: {error}")),
    }
    0
}

fn hoard() -> i32 {
    let sink = connect("sink", 200).expect("connect sink");
    let stuck = connect("stuck", 200).expect("connect stuck");
    let big = encoded(vec![7; BIG_DATA]);
    let small = encoded(vec![1; 8]);
    let mut results: Vec<Vec<u8>> = (0..64).map(|_| vec![0u8; 256]).collect();
    let mut seen = Vec::new();

    // 1. Waiting params are charged to this guest: the 17th big call is
    //    refused at once, and no completion comes for the 16 before it.
    let mut waiting = Vec::new();
    for slot in results.iter_mut().take(FILLING + 1) {
        waiting.push(submit_echo(sink, &big, slot));
    }
    arrived(&mut seen);
    let refused = seen.iter().find(|c| c.user_data == waiting[FILLING]);
    let ok = seen.len() == 1
        && overloaded_saying(refused, &results[FILLING], "1024 KiB the nucleus keeps");
    report(ok, "16 calls of 64 KiB wait; the 17th -> overloaded");
    seen.clear();
    waiting.truncate(FILLING);

    // 2. A waiting call given up: CANCEL says 1, the call says -14.
    let first = waiting.remove(0);
    let cancelled = cancel(first, &mut seen);
    let outcome = wait_for(first, 0, &mut seen).map(|c| c.outcome());
    report(
        cancelled == 1 && outcome == Some(Outcome::Failed(TransportError::Cancelled)),
        "CANCEL of a waiting call -> 1, and the call -> -14",
    );

    // 3. The number waiting is bounded per client: 17 more small ones
    //    make 32, the next is refused.
    let mut count_refused = None;
    for index in 0..=PER_CLIENT - waiting.len() {
        let slot = FILLING + 1 + index;
        let user_data = submit_echo(sink, &small, &mut results[slot]);
        arrived(&mut seen);
        if let Some(cqe) = seen.iter().find(|c| c.user_data == user_data) {
            count_refused = Some((index, *cqe, slot));
            break;
        }
        waiting.push(user_data);
    }
    let ok = count_refused.is_some_and(|(index, cqe, slot)| {
        index == PER_CLIENT - (FILLING - 1)
            && overloaded_saying(Some(&cqe), &results[slot], "32 calls of this guest wait")
    });
    report(ok, "32 calls wait; the 33rd -> overloaded");
    seen.clear();

    // Held while the patient client's call arrives beside them.
    timer_sleep(1_000_000_000).expect("Timer.sleep");

    // 4. Giving them all up refunds them: a big call waits again.
    let all = waiting.len();
    let given_up = waiting.iter().map(|&w| cancel(w, &mut seen)).sum::<i32>();
    let cancelled = seen
        .iter()
        .filter(|c| c.outcome() == Outcome::Failed(TransportError::Cancelled))
        .count();
    report(
        given_up as usize == all && cancelled == all,
        &alloc::format!("CANCEL gave up all {all} waiting calls"),
    );
    seen.clear();
    let again = submit_echo(sink, &big, &mut results[60]);

    // 5. A call larger than the server's RECV buffer is refused; it holds
    //    no call behind it.
    let large = call::<Echo>(
        stuck,
        &EchoParams {
            data: vec![0; 1024],
        },
    );
    let ok = matches!(&large, Err(CallError::Exception(e))
        if e.code == ExceptionCode::InvalidArgument && e.message.contains("do not fit"));
    if let Err(error) = &large {
        println!("refused: {error}");
    }
    report(
        ok,
        "a call larger than the server's RECV buffer -> invalidArgument",
    );

    // 6. A server that never answers holds no completion slot for ever:
    //    each call is given up after 2 ms, more of them than the CQ holds.
    let mut given_up = 0;
    for _ in 0..GIVEN_UP {
        let user_data = submit_echo(stuck, &small, &mut results[61]);
        if wait_for(user_data, 2_000_000, &mut seen).is_some() {
            break;
        }
        let cancelled = cancel(user_data, &mut seen);
        let outcome = wait_for(user_data, 0, &mut seen).map(|c| c.outcome());
        if cancelled != 1 || outcome != Some(Outcome::Failed(TransportError::Cancelled)) {
            break;
        }
        given_up += 1;
    }
    report(
        given_up == GIVEN_UP,
        &alloc::format!("{given_up} calls the server never answered, each given up after 2 ms"),
    );
    // 7. A server that exits with a call in its hands: the caller is told.
    let in_hand = submit_echo(stuck, &small, &mut results[62]);
    let done = call::<Echo>(
        stuck,
        &EchoParams {
            data: b"done".to_vec(),
        },
    );
    report(
        done.is_ok(),
        "the stuck server answers a call after all that",
    );
    let dropped = wait_for(in_hand, u64::MAX, &mut seen);
    let told = dropped
        .and_then(|cqe| exception(&cqe, &results[62]))
        .is_some_and(|e| e.code == ExceptionCode::Disconnected);
    report(
        told,
        "a call in the server's hands when it exits -> disconnected",
    );

    let answered = wait_for(again, u64::MAX, &mut seen).map(|c| c.outcome());
    report(
        matches!(answered, Some(Outcome::Done { .. })),
        "after the cancels, a 64 KiB call waited again and was answered",
    );
    let quit = EchoParams {
        data: b"quit".to_vec(),
    };
    call::<Echo>(sink, &quit).expect("the sink quits");
    0
}

/// Leaves calls waiting at the sink and exits: the nucleus must drop them
/// (the sink never takes a call of a guest that is gone).
fn leave() -> i32 {
    let sink = connect("sink", 200).expect("connect sink");
    let params = encoded(testers::LEAVER_DATA.to_vec());
    let mut results: Vec<Vec<u8>> = (0..LEFT_WAITING).map(|_| vec![0u8; 256]).collect();
    for slot in &mut results {
        submit_echo(sink, &params, slot);
    }
    let mut seen = Vec::new();
    arrived(&mut seen);
    println!("leaving with {} calls waiting", LEFT_WAITING - seen.len());
    0
}

const LEFT_WAITING: usize = 8;

fn main() -> i32 {
    let args = start_info().map(|info| info.args).unwrap_or_default();
    match args.first().map(|a| a.as_str()) {
        Some("patient") => patient(),
        Some("leaver") => leave(),
        _ => hoard(),
    }
}
