//! Tests of the `roomd` binary as an operator runs it: flags, the start-up
//! log line, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");

/// Starts roomd on a free loopback port and returns it with the first log
/// line that contains `wanted`.
fn start_until(args: &[&str], wanted: &str) -> (Child, String, mpsc::Receiver<String>) {
    let mut child = Command::new(ROOMD)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
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
            .unwrap_or_else(|_| panic!("roomd printed no line containing {wanted:?}"));
        if line.contains(wanted) {
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

#[test]
fn non_loopback_listen_needs_insecure_flag() {
    let output = Command::new(ROOMD)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .expect("roomd runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--insecure-no-auth"), "{stderr}");
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
