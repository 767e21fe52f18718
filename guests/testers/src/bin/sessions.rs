//! Serves Sessions under the name its first argument gives (default
//! "sessions"): hands each `open` a capability of its own, minted with the
//! next badge (1, 2, ...), and answers `whoami` with the badge it was
//! called through, so it tells its callers apart. `give` keeps the Sessions
//! capability a call carries and asks it `whoami`; `probe` asks the kept one
//! again. `stop` answers, then exits with the code given.
#![no_std]
#![no_main]

extern crate alloc;

use guest_rt::caps::interfaces::sessions::{
    GIVE, GiveResults, OPEN, OpenParams, OpenResults, PROBE, ProbeResults, STOP, StopParams,
    StopResults, WHOAMI, Whoami, WhoamiParams, WhoamiResults,
};
use guest_rt::caps::{CapId, Exception, ExceptionCode, Message, Rights, TransportError};
use guest_rt::clients::{Server, connect, mint, release, serve, start_info};
use guest_rt::println;
use guest_rt::ring::{CallError, call, call_with_caps};

guest_rt::entry!(main);

/// A transport error's code, or 0 when `whoami` answered.
fn whoami_code(cap: CapId) -> (i32, u64) {
    match call::<Whoami>(cap, &WhoamiParams) {
        Ok(results) => (0, results.badge),
        Err(CallError::Transport(error)) => (error.code(), 0),
        Err(CallError::Exception(e)) => {
            println!("whoami: exception {:?}: {}", e.code, e.message);
            (-100, 0)
        }
    }
}

fn main() -> i32 {
    let args = start_info().map(|info| info.args).unwrap_or_default();
    let name = args.first().map_or("sessions", |a| a.as_str());
    let mut server = Server::new(serve(name).expect("GuestControl.serve"));
    println!("serving {name}");
    // A RETURN naming no call in flight is refused, and the server goes on.
    let bogus = server.reply(0xdead_0001, &StopResults);
    let refused = matches!(bogus, Err(CallError::Transport(TransportError::InvalidCap)));
    println!(
        "{}: a RETURN with a token no call has -> -3",
        if refused { "ok" } else { "FAILED" }
    );
    if name == "relay" {
        // The serving end is this guest's alone: it cannot be passed on.
        let sessions = connect("sessions", 200).expect("connect sessions");
        let passed = call_with_caps::<Whoami>(sessions, &WhoamiParams, &[server.cap()], false);
        let refused = matches!(
            passed,
            Err(CallError::Transport(TransportError::MissingRight))
        );
        println!(
            "{}: passing a serving end to another guest -> -13",
            if refused { "ok" } else { "FAILED" }
        );
        let _ = release(sessions);
    }
    let mut next_badge = 1u64;
    let mut kept: Option<CapId> = None;
    loop {
        let call = server.receive().expect("RECV");
        let (token, method, badge) = (call.token, call.method, call.badge);
        let carried = call.caps.clone();
        let answered = match method {
            OPEN => {
                let rights = OpenParams::decode(call.params).map_or(0, |p| p.rights);
                match mint(server.cap(), next_badge, Rights::from_bits(rights)) {
                    Ok(session) => {
                        next_badge += 1;
                        // Moved: the client holds it, this server does not.
                        server.reply_with_caps(token, &OpenResults, &[session], true)
                    }
                    Err(error) => {
                        println!("mint failed: {error}");
                        server.reply_exception(
                            token,
                            &Exception::new(ExceptionCode::Failed, "mint failed"),
                        )
                    }
                }
            }
            WHOAMI => server.reply(token, &WhoamiResults { badge }),
            GIVE => match carried.first() {
                Some(&given) => {
                    kept = Some(given);
                    let (code, seen) = whoami_code(given);
                    println!(
                        "given a capability by badge {badge}: whoami through it -> {code}, badge {seen}"
                    );
                    server.reply(token, &GiveResults { badge: seen })
                }
                None => server.reply_exception(
                    token,
                    &Exception::new(
                        ExceptionCode::InvalidArgument,
                        "give carries one capability",
                    ),
                ),
            },
            PROBE => {
                let result = kept.map_or(-3, |cap| whoami_code(cap).0);
                println!("probe of the kept capability -> {result}");
                server.reply(token, &ProbeResults { result })
            }
            STOP => {
                let code = StopParams::decode(call.params).map_or(1, |p| p.code);
                server.reply(token, &StopResults).expect("RETURN");
                println!("stopping with exit code {code}");
                return code;
            }
            other => {
                println!("unknown method {other}");
                server.reply_exception(
                    token,
                    &Exception::new(ExceptionCode::Unimplemented, "no such method"),
                )
            }
        };
        if let Err(error) = answered {
            println!("RETURN failed: {error}");
        }
    }
}
