//! `corral node --host 127.0.0.1` listens there and nowhere else: not on
//! another loopback address (127.0.0.2, which Linux routes to the loopback
//! interface too), nor on `::1`. ractor_cluster used `--host` only as the
//! name it advertises and listened on every interface.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `addr` takes a TCP connection within a second.
fn reachable(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

#[test]
fn a_node_told_127_0_0_1_is_not_reachable_on_other_local_addresses() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["node", "--no-pool", "--name", "loop", "--cookie", "c"])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn corral node");
    let stdout = child.stdout.take().unwrap();
    let _child = Killed(child);
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains(" ready on "));
    assert!(ready, "corral node exited before it was ready");

    assert!(
        reachable(SocketAddr::from(([127, 0, 0, 1], port))),
        "the node listens on the address it was told"
    );
    // 127.0.0.2 is a usable local address here (the check means something).
    let control = TcpListener::bind("127.0.0.2:0").expect("127.0.0.2 is a loopback address");
    assert!(reachable(control.local_addr().unwrap()));
    assert!(
        !reachable(SocketAddr::from(([127, 0, 0, 2], port))),
        "the node must not be reachable on 127.0.0.2"
    );
    if TcpListener::bind("[::1]:0").is_ok() {
        assert!(
            !reachable(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))),
            "the node must not be reachable on ::1"
        );
    }
}
