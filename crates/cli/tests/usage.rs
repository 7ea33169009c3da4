//! Tests of `roomctl` failures that need no server: bad flags and an
//! unreachable address each get a clear message and their own exit status.

use std::process::Command;

const ROOMCTL: &str = env!("CARGO_BIN_EXE_roomctl");

fn roomctl(args: &[&str]) -> std::process::Output {
    Command::new(ROOMCTL)
        .env_remove("ROOMD_ADDR")
        .env_remove("ROOMD_TOKEN")
        .env_remove("ROOMD_TOKEN_FILE")
        .env_remove("ROOMD_CA")
        .env_remove("ROOMD_CERT")
        .env_remove("ROOMD_KEY")
        .args(args)
        .output()
        .expect("roomctl runs")
}

#[test]
fn help_lists_the_subcommands() {
    let output = roomctl(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "define",
        "create",
        "get",
        "find",
        "update",
        "close",
        "delete",
        "join",
        "leave",
        "participants",
        "watch",
    ] {
        assert!(help.contains(command), "--help does not mention {command}");
    }
}

#[test]
fn unreachable_server_exits_3() {
    // Port 1 on loopback has no listener, so the connection is refused.
    let output = roomctl(&["--addr", "127.0.0.1:1", "get", "x"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to roomd"), "{stderr}");
}

#[test]
fn invalid_address_exits_2() {
    let output = roomctl(&["--addr", "http://[::1", "get", "x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--addr"));
}

#[test]
fn missing_arguments_exit_2() {
    assert_eq!(roomctl(&["create"]).status.code(), Some(2));
    assert_eq!(roomctl(&["update", "id-only"]).status.code(), Some(2));
    assert_eq!(roomctl(&["bogus"]).status.code(), Some(2));
}

#[test]
fn principal_flags_are_checked_locally() {
    let cases: [(&[&str], &str); 4] = [
        (&["--org", "my org", "get", "x"], "--org"),
        (&["--as", "public", "get", "x"], "--as"),
        (
            &["--as", "acc1", "--roles", "dev ops", "get", "x"],
            "--roles",
        ),
        (&["--roles", "dev", "get", "x"], "--roles needs --as"),
    ];
    for (args, flag) in cases {
        // Port 1 has no listener: a check that passed would fail to connect
        // and exit 3 instead.
        let mut full = vec!["--addr", "127.0.0.1:1"];
        full.extend_from_slice(args);
        let output = roomctl(&full);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn unreachable_server_names_the_cause() {
    let output = roomctl(&["--addr", "127.0.0.1:1", "get", "x"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("--addr"), "{stderr}");
}

#[test]
fn credential_flags_are_checked_locally() {
    let dir = std::env::temp_dir().join(format!("roomctl-usage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a folder");
    let spaced = dir.join("spaced-token");
    std::fs::write(&spaced, "two words\n").expect("write the token file");
    let missing = dir.join("missing");
    let spaced = spaced.display().to_string();
    let missing = missing.display().to_string();

    let cases: [(&[&str], &str); 5] = [
        (&["--token-file", &missing, "get", "x"], "--token-file"),
        (&["--token-file", &spaced, "get", "x"], "--token-file"),
        (&["--token", "a b", "get", "x"], "--token"),
        (&["--ca", &missing, "get", "x"], "--ca"),
        (&["--cert", &missing, "get", "x"], "--key"),
    ];
    for (args, flag) in cases {
        // Port 1 has no listener: a check that passed would fail to connect
        // and exit 3 instead.
        let mut full = vec!["--addr", "127.0.0.1:1"];
        full.extend_from_slice(args);
        let output = roomctl(&full);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("two words"), "{args:?} printed the token");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
