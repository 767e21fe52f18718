//! Misuses the network while another guest serves on it; each check prints
//! what it got, and the guest exits 0 when every misuse was refused.
//!
//! `net-abuse nogrant`: without the network grant, Network is stale.
//! `net-abuse flood`: opens sockets until refused (the per-guest limit),
//! closes them and opens one again; calls on a released socket are stale;
//! listening on a port the appliance does not list is denied.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use guest_rt::caps::{ExceptionCode, TransportError};
use guest_rt::clients::start_info;
use guest_rt::net;
use guest_rt::println;
use guest_rt::ring::CallError;

guest_rt::entry!(main);

/// More than any guest may hold.
const ATTEMPTS: usize = 200;

fn main() -> i32 {
    let info = start_info().expect("start info");
    match info.args.first().map(|a| a.as_str()) {
        Some("nogrant") => no_grant(),
        Some("flood") => flood(),
        _ => {
            println!("usage: net-abuse nogrant|flood");
            2
        }
    }
}

fn no_grant() -> i32 {
    match net::addressing() {
        Err(CallError::Transport(TransportError::StaleCap)) => {
            println!("Network is a stale capability");
            0
        }
        other => {
            println!("unexpected {:?}", other.map(|a| a.address));
            1
        }
    }
}

fn flood() -> i32 {
    let mut failures = 0;
    let mut sockets = Vec::new();
    let refused = loop {
        if sockets.len() == ATTEMPTS {
            break None;
        }
        match net::bind_udp(0) {
            Ok(socket) => sockets.push(socket),
            Err(error) => break Some(error),
        }
    };
    match refused {
        Some(CallError::Exception(e)) if e.code == ExceptionCode::Overloaded => {
            println!("socket {} refused: {}", sockets.len() + 1, e.message)
        }
        other => {
            println!("{} sockets, then {other:?}", sockets.len());
            failures += 1;
        }
    }
    let last = sockets.pop().expect("at least one socket").cap();
    sockets.clear();
    match net::read(last, 16, false) {
        Err(CallError::Transport(TransportError::StaleCap)) => {
            println!("a released socket is stale")
        }
        Err(other) => {
            println!("a released socket answered {other:?}");
            failures += 1;
        }
        Ok(_) => {
            println!("a released socket still answered");
            failures += 1;
        }
    }
    match net::bind_udp(0) {
        Ok(_) => println!("after closing them a socket opens again"),
        Err(error) => {
            println!("still refused after closing: {error:?}");
            failures += 1;
        }
    }
    match net::listen(7) {
        Err(CallError::Exception(e)) if e.code == ExceptionCode::Denied => {
            println!("listening on another guest's port is denied")
        }
        other => {
            println!("port 7 answered {:?}", other.map(|l| l.cap()));
            failures += 1;
        }
    }
    if failures == 0 { 0 } else { 1 }
}
