//! Serves Echo under "echo": returns what each call sends, until it is sent
//! "quit" (answered, then the server exits and its endpoint closes).
#![no_std]
#![no_main]

extern crate alloc;

use guest_rt::caps::Message;
use guest_rt::caps::interfaces::echo::{ECHO, EchoParams, EchoResults};
use guest_rt::clients::{Server, serve};
use guest_rt::println;

guest_rt::entry!(main);

fn main() -> i32 {
    let mut server = Server::new(serve("echo").expect("GuestControl.serve"));
    println!("serving echo");
    let mut served = 0u64;
    loop {
        let call = server.receive().expect("RECV");
        let (token, method) = (call.token, call.method);
        if method != ECHO {
            println!("unknown method {method}");
            continue;
        }
        let params = EchoParams::decode(call.params).expect("well-formed echo params");
        let quit = params.data == b"quit";
        server
            .reply(token, &EchoResults { data: params.data })
            .expect("RETURN");
        served += 1;
        if quit {
            println!("served {served} calls; quitting");
            return 0;
        }
    }
}
