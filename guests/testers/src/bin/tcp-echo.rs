//! A TCP echo server: waits for an address (DHCP), checks that ports the
//! appliance does not list are refused, then listens on the port its first
//! argument names and echoes every connection back, one at a time, until a
//! connection sends "quit" (answered "bye", then it exits 0). A connection
//! that sends "crash" makes it fault while it holds its sockets.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;

use guest_rt::caps::ExceptionCode;
use guest_rt::clients::{start_info, timer_sleep};
use guest_rt::net;
use guest_rt::println;
use guest_rt::ring::CallError;

guest_rt::entry!(main);

/// How long DHCP may take (QEMU's user network answers at once).
const ADDRESS_WAIT_MS: u32 = 5000;

fn dotted(address: u32) -> String {
    let [a, b, c, d] = address.to_be_bytes();
    alloc::format!("{a}.{b}.{c}.{d}")
}

fn main() -> i32 {
    let info = start_info().expect("start info");
    let Some(port) = info.args.first().and_then(|a| a.parse::<u16>().ok()) else {
        println!("usage: tcp-echo PORT");
        return 2;
    };
    let mut waited = 0;
    let addressing = loop {
        let addressing = net::addressing().expect("Network.info");
        if addressing.address != 0 || waited >= ADDRESS_WAIT_MS {
            break addressing;
        }
        timer_sleep(10_000_000).expect("Timer.sleep");
        waited += 10;
    };
    if addressing.address == 0 {
        println!("no address after {ADDRESS_WAIT_MS} ms");
        return 3;
    }
    println!(
        "address {}/{} gateway {} dns {}",
        dotted(addressing.address),
        addressing.prefix_length,
        dotted(addressing.gateway),
        addressing
            .dns
            .first()
            .map_or(String::from("none"), |d| dotted(*d))
    );
    match net::listen(port + 1) {
        Err(CallError::Exception(e)) if e.code == ExceptionCode::Denied => {
            println!("port {} refused: {}", port + 1, e.message)
        }
        Err(other) => println!("port {}: unexpected {other:?}", port + 1),
        Ok(_) => println!(
            "port {} accepted, but the appliance does not list it",
            port + 1
        ),
    }
    let listener = net::listen(port).expect("Network.listen");
    println!("listening on port {port}");
    let mut connections = 0u32;
    loop {
        let stream = listener.accept().expect("TcpListener.accept");
        connections += 1;
        let [_, (remote, remote_port)] = stream.endpoints().expect("TcpStream.endpoints");
        println!(
            "connection {connections} from {}:{remote_port}",
            dotted(remote)
        );
        let mut bytes = 0usize;
        let mut quit = false;
        loop {
            let data = match stream.read(4096) {
                Ok(Some(data)) => data,
                Ok(None) => break,
                // The peer reset it: only this connection ends.
                Err(error) => {
                    println!("connection {connections} failed: {error}");
                    break;
                }
            };
            bytes += data.len();
            if data.starts_with(b"quit") {
                stream.write_all(b"bye\n").expect("TcpStream.write");
                quit = true;
                break;
            }
            if data.starts_with(b"crash") {
                println!("crashing with connection {connections} open, as asked");
                // SAFETY: deliberately invalid; the nucleus stops this guest
                // and closes its sockets.
                unsafe { (0xffff_ffff_8000_0000 as *mut u64).write_volatile(1) };
            }
            if let Err(error) = stream.write_all(&data) {
                println!("connection {connections} failed: {error}");
                break;
            }
        }
        // A reset connection cannot be shut down; it closes all the same.
        let _ = stream.shutdown();
        println!("connection {connections} done: {bytes} bytes echoed");
        drop(stream);
        if quit {
            println!("quitting after {connections} connections");
            return 0;
        }
    }
}
