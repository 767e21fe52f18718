//! The network from the host: appliances with the virtio-net device on
//! QEMU's user network, reached through port forwards on 127.0.0.1 only.
//! Console markers are anchored to who printed them: a guest's own lines,
//! or the nucleus's (`net: `, `pci: `, `guest N (name): `).
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use tests::{
    BootRequest, Console, ExitCode, Firmware, Run, appliance_image, image, on_bios_and_uefi,
};

/// How long a guest may take to come up and listen (UEFI under TCG is slow).
const UP: Duration = Duration::from_secs(90);
const IO: Duration = Duration::from_secs(30);

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forward");
    stream.set_read_timeout(Some(IO)).unwrap();
    stream.set_write_timeout(Some(IO)).unwrap();
    stream
}

/// Sends `data` and reads the same number of bytes back.
fn echo(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).unwrap();
    let mut back = vec![0; data.len()];
    stream.read_exact(&mut back).expect("the echo");
    back
}

/// Ends tcp-echo: it answers "bye" and closes.
fn quit(mut stream: TcpStream) {
    stream.write_all(b"quit").unwrap();
    let mut rest = String::new();
    stream.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "bye\n");
}

fn wait(console: &Console, marker: &str) {
    assert!(console.wait_for(marker, UP), "'{marker}' never appeared");
}

fn request(firmware: Firmware) -> BootRequest<'static> {
    BootRequest {
        firmware,
        ..BootRequest::new(firmware)
    }
}

/// One HTTP/1.1 response: status, headers (lower-case names), body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a keep-alive connection and reads its response
/// (the server gives every body a Content-Length).
fn http(reader: &mut BufReader<TcpStream>, method: &str, path: &str, body: &[u8]) -> Response {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: appliance\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = reader.get_mut();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("header");
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("a Content-Length");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    Response {
        status,
        headers,
        body,
    }
}

fn http_connection(port: u16) -> BufReader<TcpStream> {
    BufReader::new(connect(port))
}

fn tcp_echo(firmware: Firmware) -> Run {
    let iso = appliance_image("tcp-echo", "");
    let (run, ()) = tests::run_with_client(&iso, request(firmware), &[7], |console, ports| {
        wait(console, "] echo: listening on port 7");
        let mut stream = connect(ports[0]);
        assert_eq!(
            echo(&mut stream, b"hello over the wire\n"),
            b"hello over the wire\n"
        );
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(echo(&mut stream, &big), big, "200 kB round trip");
        drop(stream);
        // A client that resets mid-stream: only its connection ends.
        let reset = connect(ports[0]);
        reset.set_linger_zero();
        (&reset).write_all(b"half a message").unwrap();
        drop(reset);
        let mut stream = connect(ports[0]);
        assert_eq!(echo(&mut stream, b"after the reset"), b"after the reset");
        quit(stream);
    });
    run
}

/// `SO_LINGER` 0, so that dropping the stream sends a reset.
trait LingerZero {
    fn set_linger_zero(&self);
}

impl LingerZero for TcpStream {
    fn set_linger_zero(&self) {
        socket2::SockRef::from(self)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER");
    }
}

/// kv-go's store on a volume: what is put survives a reboot, deletes too.
fn kv_go_keeps_its_data(firmware: Firmware) {
    let volumes = tests::appliance_volumes("kv-go");
    let attached: Vec<(&str, &std::path::Path)> = volumes.iter().map(|v| v.attach()).collect();
    let iso = appliance_image("kv-go", "");
    let boot = |client: fn(&mut BufReader<TcpStream>)| {
        let request = BootRequest {
            volumes: &attached,
            ..request(firmware)
        };
        let (run, ()) = tests::run_with_client(&iso, request, &[8080], move |console, ports| {
            wait(console, "] kv: kv: serving");
            let mut connection = http_connection(ports[0]);
            client(&mut connection);
            assert_eq!(http(&mut connection, "GET", "/quit", b"").status, 200);
        });
        run.assert_guest_said("kv", "kv: stopped");
        run
    };
    let first = boot(|c| {
        assert_eq!(http(c, "GET", "/kv/colour", b"").status, 404);
        assert_eq!(http(c, "PUT", "/kv/colour", b"blue").status, 200);
        assert_eq!(http(c, "PUT", "/kv/size", b"large").status, 200);
        assert_eq!(http(c, "PUT", "/kv/size", b"small").status, 200);
        assert_eq!(http(c, "PUT", "/kv/gone", b"soon").status, 200);
        assert_eq!(http(c, "DELETE", "/kv/gone", b"").status, 200);
        assert_eq!(http(c, "PUT", "/kv/.hidden", b"x").status, 400);
        assert_eq!(http(c, "GET", "/kv/colour", b"").body, b"blue");
    });
    first.assert_guest_said("kv", "kv: serving 0 keys");
    let second = boot(|c| {
        assert_eq!(http(c, "GET", "/kv/colour", b"").body, b"blue");
        assert_eq!(http(c, "GET", "/kv/size", b"").body, b"small");
        assert_eq!(http(c, "GET", "/kv/gone", b"").status, 404);
        assert_eq!(http(c, "GET", "/kv", b"").body, b"colour\nsize\n");
    });
    second.assert_guest_said("kv", "kv: serving 2 keys");
}

on_bios_and_uefi! {
    kv_go_keeps_its_data_across_a_reboot => kv_go_keeps_its_data;
    tcp_echo_serves_the_host_and_survives_a_reset => |f: Firmware| {
        let run = tcp_echo(f);
        run.assert_exit(ExitCode::Success);
        for said in [
            "net: virtio-net at pci 00:02.0 claimed; MAC 52:54:00:12:34:56",
            "net: DHCP lease 10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3",
            "guest 1 (echo): exited; exit code 0\n",
        ] {
            run.assert_nucleus_said(said);
        }
        for said in [
            "address 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3",
            "port 8 refused: the appliance does not let echo listen on port 8 (not in its listen)",
            "connection 1 from 10.0.2.2:",
            "connection 1 done: 200020 bytes echoed\n",
        ] {
            run.assert_guest_said("echo", said);
        }
        // The reset connection may end before the guest accepts it.
        let quit = run.assert_guest_said("echo", "quitting after ");
        assert!(quit.ends_with("after 2 connections") || quit.ends_with("after 3 connections"), "{quit}");
        run.assert_nucleus_said("pci: 00:02.0 1af4:1041 network controller");
    };
    http_go_serves_hello_stats_and_echo => |f: Firmware| {
        let iso = appliance_image("http-go", "qemu-exit");
        let (run, ()) = tests::run_with_client(&iso, request(f), &[8080], |console, ports| {
            wait(console, "] http-go: http: serving on the preopened listener (fd 3)");
            let port = ports[0];
            let mut connection = http_connection(port);
            let hello = http(&mut connection, "GET", "/hello", b"");
            assert_eq!((hello.status, hello.body.as_slice()), (200, &b"hello from http-go\n"[..]));
            // 200 requests on one keep-alive connection.
            for _ in 0..200 {
                assert_eq!(http(&mut connection, "GET", "/hello", b"").status, 200);
            }
            let stats = http(&mut connection, "GET", "/stats", b"");
            assert_eq!(stats.header("content-type"), Some("application/json"));
            let stats = String::from_utf8(stats.body).unwrap();
            assert!(stats.contains("\"requests\":202"), "{stats}");
            assert!(stats.contains("\"uptimeSeconds\":"), "{stats}");
            // A client that sends half a request (its headers cut short, so
            // no handler runs) and vanishes.
            let mut half = connect(port);
            half.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
            half.set_linger_zero();
            drop(half);
            // 1 MiB through POST /echo.
            let body: Vec<u8> = (0..1u32 << 20).map(|i| (i * 31 % 253) as u8).collect();
            let echoed = http(&mut connection, "POST", "/echo", &body);
            assert_eq!(echoed.status, 200);
            assert!(echoed.body == body, "1 MiB echoed intact ({} bytes back)", echoed.body.len());
            // 16 connections at once. They are opened one after another:
            // QEMU's user network accepts forwarded connections with a
            // listen backlog of 1, so a burst of connects on the host is
            // refused there, before the appliance sees it.
            let connections: Vec<_> = (0..16).map(|_| {
                let connection = http_connection(port);
                thread::sleep(Duration::from_millis(20));
                connection
            }).collect();
            let workers: Vec<_> = connections.into_iter().enumerate().map(|(i, mut connection)| thread::spawn(move || {
                for _ in 0..5 {
                    let payload = format!("connection {i}");
                    let echoed = http(&mut connection, "POST", "/echo", payload.as_bytes());
                    assert_eq!(echoed.body, payload.as_bytes());
                }
            })).collect();
            for worker in workers {
                worker.join().expect("a concurrent client");
            }
            let bye = http(&mut connection, "GET", "/quit", b"");
            assert_eq!(bye.body, b"bye\n");
            connection.get_ref().shutdown(Shutdown::Both).ok();
        });
        run.assert_exit(ExitCode::Success);
        run.assert_guest_said("http-go", "http: stopped after 284 requests");
        run.assert_nucleus_said("guest 1 (http-go): exited; exit code 0\n");
    };
}

#[test]
fn a_guest_killed_with_open_sockets_closes_them_and_its_restart_serves() {
    // tcp-echo, restarted once when it fails; net-abuse beside it.
    let iso = image(
        "qemu-exit allow-unisolated-guests",
        &[
            "echo=tcp-echo,arg=7,grants=console+timer+network,listen=7,restart=1",
            "flood=net-abuse,arg=flood,grants=console+network",
            "nogrant=net-abuse,arg=nogrant,grants=console",
        ],
    );
    let (run, ()) =
        tests::run_with_client(&iso, request(Firmware::Bios), &[7], |console, ports| {
            wait(console, "] echo: listening on port 7");
            let mut stream = connect(ports[0]);
            assert_eq!(echo(&mut stream, b"before"), b"before");
            stream.write_all(b"crash").unwrap();
            // The guest faults holding this connection: the host sees it end.
            let mut rest = Vec::new();
            let ended = stream.read_to_end(&mut rest);
            assert!(
                ended.is_ok()
                    || ended
                        .as_ref()
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
                "{ended:?}"
            );
            // The restarted guest listens on the same port again.
            wait(console, "] guest (echo): restarting after exit code 142");
            let deadline = std::time::Instant::now() + UP;
            let text = loop {
                let text = console.text();
                if text.matches("] echo: listening on port 7").count() >= 2 {
                    break text;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the restart never listened"
                );
                thread::sleep(Duration::from_millis(50));
            };
            drop(text);
            let mut stream = connect(ports[0]);
            assert_eq!(
                echo(&mut stream, b"after the restart"),
                b"after the restart"
            );
            quit(stream);
        });
    run.assert_exit(ExitCode::Success);
    run.assert_guest_said("echo", "crashing with connection 1 open, as asked\n");
    run.assert_nucleus_said("guest 1 (echo): stopped by #PF");
    for said in [
        "socket 65 refused: too many sockets: a guest may hold 64",
        "a released socket is stale\n",
        "after closing them a socket opens again\n",
        "listening on another guest's port is denied\n",
    ] {
        run.assert_guest_said("flood", said);
    }
    run.assert_exited("flood", 0);
    run.assert_guest_said("nogrant", "Network is a stale capability\n");
    run.assert_exited("nogrant", 0);
    run.assert_guest_said("echo", "quitting after 1 connections\n");
}

/// The `pc` machine has no MCFG: PCI goes through the legacy ports, and
/// the NIC sits elsewhere on the bus.
#[test]
fn the_pc_machine_reaches_the_nic_through_the_legacy_ports() {
    let iso = appliance_image("tcp-echo", "");
    let request = BootRequest {
        qemu_args: &["-machine", "pc"],
        ..request(Firmware::Bios)
    };
    let (run, ()) = tests::run_with_client(&iso, request, &[7], |console, ports| {
        wait(console, "] echo: listening on port 7");
        let mut stream = connect(ports[0]);
        assert_eq!(
            echo(&mut stream, b"over the legacy ports"),
            b"over the legacy ports"
        );
        quit(stream);
    });
    run.assert_exit(ExitCode::Success);
    run.assert_nucleus_said("pci: no MCFG; configuration through the legacy ports 0xcf8/0xcfc\n");
    run.assert_nucleus_said("pci: 00:03.0 1af4:1041 network controller");
    run.assert_nucleus_said("net: virtio-net at pci 00:03.0 claimed");
}
