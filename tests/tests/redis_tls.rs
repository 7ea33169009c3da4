//! `roomd` on a Redis server that requires TLS (`rediss://`) and a
//! password, with certificates made by the test.

use std::path::PathBuf;

use roomd_tests::tls::write_file;
use roomd_tests::{Caller, RedisServer, RoomdProcess, TestCa, create_room, open_room, run_roomd};

const ORG: &str = "clinic-rediss";

/// A Redis server with a TLS port and a password, the CA that issued its
/// certificate, and a file with the password.
struct SecuredRedis {
    ca: TestCa,
    password: String,
    password_file: PathBuf,
    redis: RedisServer,
}

impl SecuredRedis {
    async fn start() -> Self {
        let ca = TestCa::new("redis test CA");
        let server_cert = ca.issue_server("redis");
        let password = format!("redis-pw-{}", uuid::Uuid::now_v7().simple());
        let redis = RedisServer::spawn_secured(&server_cert, &password).await;
        let password_file = write_file(ca.dir(), "redis-password", &format!("{password}\n"));
        SecuredRedis {
            ca,
            password,
            password_file,
            redis,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_password_file_and_ca() {
    let SecuredRedis {
        ca,
        password,
        password_file,
        redis,
    } = SecuredRedis::start().await;
    let ca_path = ca.ca_path().display().to_string();

    let roomd = RoomdProcess::spawn(&[
        "--redis-url",
        &redis.tls_url(),
        "--redis-password-file",
        &password_file.display().to_string(),
        "--redis-ca",
        &ca_path,
    ])
    .await;
    let mut rooms = roomd.rooms_client().await;
    let room = create_room(
        &mut rooms,
        &Caller::service(ORG),
        open_room("Over TLS", &[]),
    )
    .await;

    let plain = redis::Client::open(format!("redis://:{password}@{}", redis.address()))
        .expect("a valid URL");
    let mut connection = plain
        .get_multiplexed_async_connection()
        .await
        .expect("connect with the password");
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("roomd:room:{{{}}}", room.id))
        .query_async(&mut connection)
        .await
        .expect("EXISTS runs");
    assert!(exists, "the room was not stored in the TLS Redis");
    assert!(
        !roomd.log().contains(&password),
        "roomd logged the Redis password"
    );
    drop(roomd);

    // The password may come in the URL instead.
    let port = redis.tls_port().expect("the server has a TLS port");
    let url = format!("rediss://:{password}@127.0.0.1:{port}");
    let roomd = RoomdProcess::spawn(&["--redis-url", &url, "--redis-ca", &ca_path]).await;
    let mut rooms = roomd.rooms_client().await;
    create_room(
        &mut rooms,
        &Caller::service(ORG),
        open_room("URL password", &[]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_untrusted_certificate_or_no_password_fails() {
    let SecuredRedis {
        ca,
        password,
        password_file,
        redis,
    } = SecuredRedis::start().await;
    let other_ca = TestCa::new("another CA");

    let cases = [
        vec![
            "--redis-password-file".to_owned(),
            password_file.display().to_string(),
            "--redis-ca".to_owned(),
            other_ca.ca_path().display().to_string(),
        ],
        vec!["--redis-ca".to_owned(), ca.ca_path().display().to_string()],
    ];
    for extra in cases {
        let flags = extra.clone();
        let mut args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--internal-listen",
            "127.0.0.1:0",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(["--redis-url".to_owned(), redis.tls_url()]);
        args.extend(extra);
        let output = run_roomd(args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(
            stderr.contains("Redis at rediss://127.0.0.1"),
            "{flags:?}: {stderr}"
        );
        assert!(
            !stderr.contains(&password),
            "{flags:?} printed the password"
        );
    }
}
