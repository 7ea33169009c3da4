//! Authentication of a real `roomd` process: TLS with client certificates,
//! service tokens and JWTs (HS256, RS256, ES256). Rejected requests get
//! `unauthenticated` and change nothing. JWT account claims decide ACL
//! checks, and `roomctl` connects with a CA, a client certificate and a
//! token.

use std::path::PathBuf;
use std::process::Output;

use jsonwebtoken::Algorithm;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{FindRoomsRequest, Room};
use roomd_tests::jwt::claims;
use roomd_tests::tls::{CertFiles, write_file};
use roomd_tests::{
    Caller, JwtKeys, RoomdProcess, TestCa, binary, close_request, create_room, delete_request,
    expect_fault, get_request, open_room, run_roomd, update_request,
};
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

const ORG: &str = "clinic-auth";
const SERVICE_TOKEN: &str = "scheduler-token-0123456789abcdef";

/// A `roomd` that serves TLS, takes client certificates from `ca`, the
/// service token [`SERVICE_TOKEN`], and JWTs signed with `jwt`.
struct SecuredRoomd {
    roomd: RoomdProcess,
    ca: TestCa,
    jwt: JwtKeys,
    client: CertFiles,
}

impl SecuredRoomd {
    async fn start() -> Self {
        let ca = TestCa::new("roomd test CA");
        let server = ca.issue_server("server");
        let client = ca.issue_client("scheduler");
        let jwt = JwtKeys::generate(ca.dir());
        let tokens = write_file(
            ca.dir(),
            "service-tokens",
            &format!("# test services\nscheduler {SERVICE_TOKEN}\n"),
        );

        let path = |p: &PathBuf| p.display().to_string();
        let mut args = vec![
            "--tls-cert".to_owned(),
            path(&server.cert),
            "--tls-key".to_owned(),
            path(&server.key),
            "--tls-client-ca".to_owned(),
            path(&ca.ca_path()),
            "--service-tokens-file".to_owned(),
            path(&tokens),
        ];
        args.extend(jwt.roomd_args());
        let roomd = RoomdProcess::spawn_tls(&args, ca.client_tls()).await;
        SecuredRoomd {
            roomd,
            ca,
            jwt,
            client,
        }
    }

    /// Connects a client over TLS without a client certificate.
    async fn rooms(&self) -> RoomsClient<Channel> {
        RoomsClient::new(self.roomd.channel(self.ca.client_tls()).await)
    }

    fn service(&self) -> Caller {
        Caller::service(ORG).with_token(SERVICE_TOKEN)
    }
}

/// Returns every room of the org with its version and state, as an
/// authenticated service reads them.
async fn snapshot(rooms: &mut RoomsClient<Channel>, caller: &Caller) -> Vec<(String, u64, i32)> {
    let found = rooms
        .find_rooms(caller.request(FindRoomsRequest {
            filter_json: "{}".into(),
            limit: 1000,
            ..Default::default()
        }))
        .await
        .expect("find rooms as the service")
        .into_inner();
    let mut seen: Vec<(String, u64, i32)> = found
        .rooms
        .iter()
        .map(|room| (room.id.clone(), room.version, room.state))
        .collect();
    seen.sort();
    seen
}

/// Sends a create, an update, a close and a delete of `room` as `caller`
/// and checks that each is rejected with `unauthenticated`.
async fn assert_every_change_rejected(
    rooms: &mut RoomsClient<Channel>,
    caller: &Caller,
    room: &Room,
    case: &str,
) {
    let created = rooms
        .create_room(caller.request(open_room("Intruder", &[])))
        .await;
    expect_fault(created).assert_is(Code::Unauthenticated, "unauthenticated", &[]);

    let updated = rooms
        .update_room(caller.request(update_request(&room.id, r#"{"$set":{"label":"x"}}"#)))
        .await;
    expect_fault(updated).assert_is(Code::Unauthenticated, "unauthenticated", &[]);

    let closed = rooms
        .close_room(caller.request(close_request(&room.id)))
        .await;
    let fault = expect_fault(closed);
    assert_eq!(fault.reason, "unauthenticated", "{case}: {fault:?}");

    let deleted = rooms
        .delete_room(caller.request(delete_request(&room.id)))
        .await;
    let fault = expect_fault(deleted);
    assert_eq!(fault.reason, "unauthenticated", "{case}: {fault:?}");

    let read = rooms.get_room(caller.request(get_request(&room.id))).await;
    let fault = expect_fault(read);
    assert_eq!(fault.reason, "unauthenticated", "{case}: {fault:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_rejected_credentials_change_nothing() {
    let secured = SecuredRoomd::start().await;
    let mut rooms = secured.rooms().await;
    let service = secured.service();
    let room = create_room(&mut rooms, &service, open_room("Visit", &[])).await;
    let before = snapshot(&mut rooms, &service).await;

    let expired = secured.jwt.sign(
        Algorithm::HS256,
        &claims(json!({"exp": chrono::Utc::now().timestamp() - 3600})),
    );
    let other_audience = secured
        .jwt
        .sign(Algorithm::RS256, &claims(json!({"aud": "another-service"})));
    let cases = [
        ("no credential", Caller::service(ORG)),
        (
            "wrong token",
            Caller::service(ORG).with_token("scheduler-token-0123456789abcdeX"),
        ),
        ("expired JWT", Caller::service(ORG).with_token(&expired)),
        (
            "JWT for another audience",
            Caller::service(ORG).with_token(&other_audience),
        ),
        ("forged account", Caller::account(ORG, "acc1")),
    ];
    for (case, caller) in &cases {
        assert_every_change_rejected(&mut rooms, caller, &room, case).await;
    }

    let other_ca = TestCa::new("another CA");
    let stranger = other_ca.issue_client("stranger");
    let channel = secured
        .roomd
        .channel(secured.ca.client_tls_with(&CertFiles {
            cert: stranger.cert.clone(),
            key: stranger.key.clone(),
        }))
        .await;
    let mut stranger_rooms = RoomsClient::new(channel);
    assert_every_change_rejected(
        &mut stranger_rooms,
        &Caller::service(ORG),
        &room,
        "client certificate from another CA",
    )
    .await;
    assert_every_change_rejected(
        &mut stranger_rooms,
        &service,
        &room,
        "client certificate from another CA with a valid token",
    )
    .await;

    assert_eq!(snapshot(&mut rooms, &service).await, before);
    let log = secured.roomd.log();
    assert!(log.contains("authentication rejected"), "{log}");
    assert!(!log.contains(SERVICE_TOKEN), "the service token was logged");
    assert!(!log.contains(&expired), "a JWT was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_service_token_and_signed_jwts_accepted() {
    let secured = SecuredRoomd::start().await;
    let mut rooms = secured.rooms().await;

    let service = secured.service();
    let room = create_room(&mut rooms, &service, open_room("By token", &[])).await;
    assert_eq!(room.org, ORG);

    for algorithm in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
        let token = secured.jwt.sign(algorithm, &claims(json!({})));
        let caller = Caller::service(ORG).with_token(&token);
        let label = format!("By {algorithm:?}");
        let created = create_room(&mut rooms, &caller, open_room(&label, &[])).await;
        assert_eq!(created.label, label);
    }
    assert_eq!(snapshot(&mut rooms, &service).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_client_certificate_is_a_credential() {
    let secured = SecuredRoomd::start().await;
    let channel = secured
        .roomd
        .channel(secured.ca.client_tls_with(&secured.client))
        .await;
    let mut rooms = RoomsClient::new(channel);

    let caller = Caller::service(ORG);
    let room = create_room(&mut rooms, &caller, open_room("By certificate", &[])).await;
    let read = rooms
        .get_room(Caller::account(ORG, "acc1").request(get_request(&room.id)))
        .await;
    expect_fault(read).assert_is(
        Code::PermissionDenied,
        "accessDenied.read",
        &[("roomId", &room.id)],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_jwt_account_claims_drive_acl() {
    let secured = SecuredRoomd::start().await;
    let mut rooms = secured.rooms().await;
    let room = create_room(
        &mut rooms,
        &secured.service(),
        open_room("Claims", &["account.acc1.read", "role.staff.update"]),
    )
    .await;

    let token = |extra| secured.jwt.sign(Algorithm::ES256, &claims(extra));
    let acc1 = token(json!({"account": "acc1", "org": ORG}));
    let acc1_staff = token(json!({"account": "acc1", "roles": ["staff"], "org": ORG}));
    let acc2 = token(json!({"account": "acc2"}));

    let as_acc1 = Caller::service(ORG).with_token(&acc1);
    let read = rooms.get_room(as_acc1.request(get_request(&room.id))).await;
    assert_eq!(read.expect("acc1 may read").into_inner().id, room.id);
    let closed = rooms
        .close_room(as_acc1.request(close_request(&room.id)))
        .await;
    expect_fault(closed).assert_is(
        Code::PermissionDenied,
        "accessDenied.update",
        &[("roomId", &room.id)],
    );

    let as_acc2 = Caller::service(ORG).with_token(&acc2);
    let read = rooms.get_room(as_acc2.request(get_request(&room.id))).await;
    expect_fault(read).assert_is(
        Code::PermissionDenied,
        "accessDenied.read",
        &[("roomId", &room.id)],
    );

    // A JWT that names an account acts only as that account: a header
    // naming another account or more roles is rejected.
    for forged in [
        Caller::account(ORG, "acc2").with_token(&acc1),
        Caller::account(ORG, "acc1")
            .with_roles(&["staff"])
            .with_token(&acc1),
        Caller::service("clinic-other").with_token(&acc1),
    ] {
        let closed = rooms
            .close_room(forged.request(close_request(&room.id)))
            .await;
        expect_fault(closed).assert_is(Code::Unauthenticated, "unauthenticated", &[]);
    }

    let as_staff = Caller::service(ORG).with_token(&acc1_staff);
    let closed = rooms
        .close_room(as_staff.request(close_request(&room.id)))
        .await
        .expect("the staff role may close")
        .into_inner();
    assert_eq!(closed.state, roomd_proto::v1::RoomState::Closed as i32);
}

/// Runs `roomctl` with `args`, off the async runtime's threads.
async fn roomctl(args: Vec<String>) -> Output {
    let program = binary("roomctl");
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(program);
        for name in [
            "ROOMD_ADDR",
            "ROOMD_ORG",
            "ROOMD_AS",
            "ROOMD_ROLES",
            "ROOMD_TOKEN",
        ] {
            command.env_remove(name);
        }
        for name in ["ROOMD_TOKEN_FILE", "ROOMD_CA", "ROOMD_CERT", "ROOMD_KEY"] {
            command.env_remove(name);
        }
        command.args(&args).output().expect("roomctl runs")
    })
    .await
    .expect("roomctl task completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_roomctl_with_tls_certificate_and_token() {
    let secured = SecuredRoomd::start().await;
    let token_file = write_file(
        secured.ca.dir(),
        "roomctl-token",
        &format!("{SERVICE_TOKEN}\n"),
    );
    let path = |p: &PathBuf| p.display().to_string();
    let connection = vec![
        "--addr".to_owned(),
        secured.roomd.address.to_string(),
        "--org".to_owned(),
        ORG.to_owned(),
        "--ca".to_owned(),
        path(&secured.ca.ca_path()),
    ];
    let with = |extra: &[String], command: &[&str]| {
        let mut args = connection.clone();
        args.extend_from_slice(extra);
        args.extend(command.iter().map(|arg| (*arg).to_owned()));
        args
    };
    let credentials = [
        "--cert".to_owned(),
        path(&secured.client.cert),
        "--key".to_owned(),
        path(&secured.client.key),
        "--token-file".to_owned(),
        path(&token_file),
    ];

    let created = roomctl(with(&credentials, &["create", "--label", "From roomctl"])).await;
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "roomctl create failed: {stderr}");
    let room: serde_json::Value =
        serde_json::from_slice(&created.stdout).expect("roomctl prints the room as JSON");
    let room_id = room["_id"].as_str().expect("the room has an id").to_owned();

    let read = roomctl(with(&credentials, &["get", &room_id])).await;
    assert!(
        read.status.success(),
        "roomctl get failed: {}",
        String::from_utf8_lossy(&read.stderr)
    );

    let anonymous = roomctl(with(&[], &["get", &room_id])).await;
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert_eq!(anonymous.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: unauthenticated: "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_bad_files_exit_2_without_secrets() {
    let dir = tempfile::tempdir().expect("create a folder");
    let secret = "a-secret-that-is-long-enough-0123";
    let duplicate = write_file(
        dir.path(),
        "duplicate",
        &format!("a {secret}\nb {secret}\n"),
    );
    let short = write_file(dir.path(), "short", "a s3cr3t\n");
    let jwt_secret = write_file(dir.path(), "jwt", &format!("{secret}\n"));
    let empty = write_file(dir.path(), "empty", "# no services yet\n");
    let missing = dir.path().join("missing");
    let ca = TestCa::new("roomd test CA");
    let server = ca.issue_server("server");
    let client = ca.issue_client("scheduler");
    let path = |p: &PathBuf| p.display().to_string();

    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--service-tokens-file".into(), path(&duplicate)],
            format!("invalid --service-tokens-file {}, line 2", path(&duplicate)),
        ),
        (
            vec!["--service-tokens-file".into(), path(&short)],
            "line 1".into(),
        ),
        (
            vec!["--service-tokens-file".into(), path(&empty)],
            format!(
                "invalid --service-tokens-file {}: contains no token",
                path(&empty)
            ),
        ),
        (
            vec!["--service-tokens-file".into(), path(&missing)],
            format!("cannot read --service-tokens-file {}", path(&missing)),
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&server.cert),
                "--tls-key".into(),
                path(&client.key),
            ],
            format!(
                "invalid --tls-key {}: does not match the certificate",
                path(&client.key)
            ),
        ),
        (
            vec!["--jwt-secret-file".into(), path(&jwt_secret)],
            "--jwt-audience".into(),
        ),
        (
            vec!["--node-token-file".into(), path(&short)],
            "--node-token-file".into(),
        ),
        (
            vec![
                "--tls-cert".into(),
                path(&short),
                "--tls-key".into(),
                path(&short),
            ],
            "--tls-cert".into(),
        ),
    ];
    for (args, expected) in cases {
        let command_line = args.clone();
        let mut full_args = vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()];
        full_args.extend(args);
        let output = run_roomd(full_args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command_line:?}: {stderr}");
        assert!(stderr.contains(&expected), "{command_line:?}: {stderr}");
        assert!(
            !stderr.contains(secret),
            "{command_line:?} printed the secret: {stderr}"
        );
        assert!(
            !stderr.contains("s3cr3t"),
            "{command_line:?} printed the secret: {stderr}"
        );
    }
}
