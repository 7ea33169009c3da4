//! Tests of the `roomd` binary as an operator runs it: flags, the start-up
//! log line, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");

/// A roomd process that is killed when the test ends, even by a panic.
struct Roomd(Child);

impl Drop for Roomd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Roomd {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Roomd {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts roomd on a free loopback port and returns it with the first log
/// line that contains `expected_line`.
fn start_until(args: &[&str], expected_line: &str) -> (Roomd, String, mpsc::Receiver<String>) {
    let mut child = Command::new(ROOMD)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map(Roomd)
        .expect("roomd starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("roomd printed no line containing {expected_line:?}"));
        if line.contains(expected_line) {
            return (child, line, lines);
        }
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn wait_with_timeout(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().expect("roomd can be waited on") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().ok();
    panic!("roomd did not exit within 10 s of SIGTERM");
}

#[test]
fn startup_line_names_address_and_store() {
    let (mut child, line, lines) = start_until(&[], "roomd listening");
    assert!(line.contains("127.0.0.1:"), "{line}");
    assert!(line.contains("memory"), "{line}");

    terminate(&child);
    let status = wait_with_timeout(&mut child);
    assert!(status.success(), "roomd exited with {status}");
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("roomd stopped")), "{rest:?}");
}

#[test]
fn json_log_format_prints_json_lines() {
    let (mut child, line, _lines) = start_until(&["--log-format", "json"], "roomd listening");
    let value: serde_json::Value = serde_json::from_str(&line).expect("log line is JSON");
    assert_eq!(value["store"], "memory");
    assert!(value["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    terminate(&child);
    assert!(wait_with_timeout(&mut child).success());
}

#[tokio::test]
async fn shutdown_grace_closes_idle_connections() {
    use roomd_proto::v1::{GetRoomRequest, rooms_client::RoomsClient};

    let (mut child, line, lines) = start_until(&["--shutdown-grace", "1"], "roomd listening");
    let api_address = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("address="))
        .expect("start-up line names the address")
        .to_owned();
    // The client stays connected but is never polled while the test blocks
    // below, so it cannot take part in a graceful HTTP/2 shutdown.
    let mut rooms = RoomsClient::connect(format!("http://{api_address}"))
        .await
        .expect("roomd accepts gRPC");
    // A connect can finish before roomd accepts the connection, so a request
    // with a response first makes sure roomd has it open when the shutdown starts.
    let fault = rooms
        .get_room(GetRoomRequest {
            room_id: "00000000-0000-4000-8000-000000000000".to_owned(),
        })
        .await
        .expect_err("the room does not exist");
    assert_ne!(fault.code(), tonic::Code::Unavailable, "{fault:?}");

    terminate(&child);
    assert!(wait_with_timeout(&mut child).success());
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("shutdown grace period")),
        "{rest:?}"
    );
    drop(rooms);
}

#[test]
fn non_loopback_listen_needs_insecure_flag() {
    // The address check runs before roomd connects to Redis, so nothing dials this URL.
    let cases = [
        (
            vec!["--listen", "0.0.0.0:0"],
            "public port",
            "--service-tokens-file",
        ),
        (
            vec![
                "--redis-url",
                "redis://127.0.0.1:1",
                "--internal-listen",
                "0.0.0.0:0",
            ],
            "internal port",
            "--node-token-file",
        ),
    ];
    for (args, port, credential_flag) in cases {
        let output = Command::new(ROOMD)
            .args(&args)
            .output()
            .expect("roomd runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--insecure-no-auth"), "{args:?}: {stderr}");
        assert!(stderr.contains(port), "{args:?}: {stderr}");
        assert!(stderr.contains(credential_flag), "{args:?}: {stderr}");
    }
}

#[test]
fn out_of_range_flags_are_rejected() {
    for args in [
        ["--unused-timeout", "0"],
        ["--empty-timeout", "90000"],
        ["--max-participants", "501"],
        ["--log-format", "yaml"],
    ] {
        let output = Command::new(ROOMD).args(args).output().expect("roomd runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn environment_sets_flags() {
    let output = Command::new(ROOMD)
        .env("ROOMD_UNUSED_TIMEOUT", "0")
        .output()
        .expect("roomd runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unused-timeout"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

fn http_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("metrics port accepts");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("request is sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("response is read");
    response
}

#[tokio::test]
async fn metrics_count_created_rooms() {
    use roomd_proto::v1::CreateRoomRequest;
    use roomd_proto::v1::rooms_client::RoomsClient;

    let metrics_address = format!("127.0.0.1:{}", free_port());
    let (mut child, line, _lines) = start_until(
        &[
            "--metrics-listen",
            &metrics_address,
            "--shutdown-grace",
            "1",
        ],
        "roomd listening",
    );
    let api_address = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("address="))
        .expect("start-up line names the address")
        .to_owned();

    let mut rooms = RoomsClient::connect(format!("http://{api_address}"))
        .await
        .expect("roomd accepts gRPC");
    rooms
        .create_room(CreateRoomRequest {
            label: "Visit".into(),
            ..CreateRoomRequest::default()
        })
        .await
        .expect("room is created");

    let response = http_get(&metrics_address, "/metrics");
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "{response}"
    );
    assert!(
        response.contains("roomd_rooms_created_total 1"),
        "{response}"
    );
    assert!(
        response.contains("# HELP roomd_rooms_created_total"),
        "{response}"
    );

    drop(rooms);
    terminate(&child);
    assert!(wait_with_timeout(&mut child).success());
}
