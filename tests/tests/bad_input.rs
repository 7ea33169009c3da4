//! The bad-input corpus in `tests/corpus/bad_input/*.jsonl`, sent through the
//! public API of a real `roomd` process backed by a real `redis-server`.
//! Every case must get the fault it names, the node must keep serving, and
//! every Redis key must hold the same value afterwards as before.
//!
//! Each line of a corpus file is one case:
//!
//! | key | meaning |
//! |---|---|
//! | `name` | what the case sends |
//! | `rpc` | the method, such as `UpdateRoom` or `PutRoomDefinition` |
//! | `metadata` | ASCII metadata; `{"x-roomd-org": "clinicA"}` when absent |
//! | `metadata_bytes` | metadata values given as bytes, which need not be ASCII |
//! | `metadata_binary` | binary (`-bin`) metadata values given as bytes |
//! | `request` | the message's fields by their proto names |
//! | `huge` | a generated field: `item` (`%i` becomes its index) repeated `count` times, joined by `separator`, then `inner` and `suffix_item` repeated `count` times, put into `template` at `%s`; list fields (`acl`, `sort`) get a list and `custom` an object |
//! | `raw_fields` | string fields sent as raw bytes by tag, which need not be UTF-8 |
//! | `raw_message` | the request message's bytes, sent as they are |
//! | `expect` | `code`, or `codes` when several are acceptable; `reason` and `path` of the `ErrorInfo`, which every fault must carry |
//!
//! Room ids `@openA`, `@closedA`, `@newA` (org `clinicA`) and `@openB` (org
//! `clinicB`) name the rooms seeded before the corpus runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut};
use prost_types::Timestamp;
use roomd_proto::convert;
use roomd_proto::v1::definitions_client::DefinitionsClient;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{
    CloseRoomRequest, CreateRoomRequest, DeleteRoomRequest, FindRoomsRequest,
    GetRoomDefinitionRequest, GetRoomRequest, JoinRoomRequest, LeaveRoomRequest,
    ListParticipantsRequest, PropertyDefinition, PropertyType, PutRoomDefinitionRequest,
    RoomConfigurationInput, RoomDefinition, SortField, UpdateRoomRequest, WatchRoomRequest,
};
use roomd_tests::{
    Caller, RedisServer, RoomdProcess, close_request, create_room, join_request, open_room,
    put_definition,
};
use serde_json::{Value, json};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, BinaryMetadataKey, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const ORG_A: &str = "clinicA";
const ORG_B: &str = "clinicB";

/// One case of the corpus, as read from its line.
struct Case {
    /// `file:line name`, for failure messages.
    label: String,
    value: Value,
}

impl Case {
    fn field(&self, key: &str) -> Option<&Value> {
        self.value.get(key).filter(|value| !value.is_null())
    }

    fn rpc(&self) -> &str {
        self.field("rpc")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/bad_input")
}

fn read_corpus() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read tests/corpus/bad_input")
        .map(|entry| entry.expect("list tests/corpus/bad_input").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();

    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a corpus file");
        let file_name = file.file_name().unwrap_or_default().to_string_lossy();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{file_name}:{} is not JSON: {e}", index + 1));
            let name = value["name"].as_str().unwrap_or("unnamed").to_owned();
            cases.push(Case {
                label: format!("{file_name}:{} {name}", index + 1),
                value,
            });
        }
    }
    cases
}

/// Ids of the seeded rooms, by the names the corpus uses for them.
type Seeded = HashMap<&'static str, String>;

/// Stores a definition for `clinicA` and creates an open room with a
/// participant, a closed room and a room waiting for its `openAt` there,
/// and one open room in `clinicB`.
async fn seed(channel: Channel) -> Seeded {
    let mut rooms = RoomsClient::new(channel.clone());
    let mut definitions = DefinitionsClient::new(channel);
    let property =
        |name: &str, kind: PropertyType, array: bool, indexed: bool| PropertyDefinition {
            name: name.to_owned(),
            label: name.to_owned(),
            r#type: kind as i32,
            array,
            indexed,
        };
    put_definition(
        &mut definitions,
        ORG_A,
        vec![
            property("c_number", PropertyType::Number, false, true),
            property("c_flag", PropertyType::Boolean, false, true),
            property("c_when", PropertyType::Date, false, true),
            property("c_tags", PropertyType::String, true, false),
            property("c_note", PropertyType::String, false, false),
        ],
    )
    .await;

    let service_a = Caller::service(ORG_A);
    let mut open_a = open_room("Open A", &["account.reader.read"]);
    open_a.owner = "owner1".to_owned();
    open_a.custom = Some(convert::json_object_to_struct(&BTreeMap::from([
        ("c_number".to_owned(), json!(7)),
        ("c_tags".to_owned(), json!(["a"])),
    ])));
    let open_a = create_room(&mut rooms, &service_a, open_a).await;
    rooms
        .join_room(service_a.request(join_request(&open_a.id, "guest1")))
        .await
        .expect("join guest1");

    let closed_a = create_room(&mut rooms, &service_a, open_room("Closed A", &[])).await;
    rooms
        .close_room(service_a.request(close_request(&closed_a.id)))
        .await
        .expect("close a room");

    let a_day_ahead = chrono::Utc::now() + chrono::Duration::days(1);
    let waiting = CreateRoomRequest {
        label: "New A".to_owned(),
        configuration: Some(RoomConfigurationInput {
            open_at: Some(Timestamp {
                seconds: a_day_ahead.timestamp(),
                nanos: 0,
            }),
            ..RoomConfigurationInput::default()
        }),
        ..CreateRoomRequest::default()
    };
    let new_a = create_room(&mut rooms, &service_a, waiting).await;

    let open_b = create_room(
        &mut rooms,
        &Caller::service(ORG_B),
        open_room("Open B", &[]),
    )
    .await;

    HashMap::from([
        ("@openA", open_a.id),
        ("@closedA", closed_a.id),
        ("@newA", new_a.id),
        ("@openB", open_b.id),
    ])
}

/// Reads every key's value with `DUMP`, except the node directory and
/// heartbeats, which the node rewrites on its own schedule.
async fn dump_store(redis: &RedisServer) -> BTreeMap<String, Vec<u8>> {
    let mut connection = redis.client().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .expect("KEYS *");
    let mut dump = BTreeMap::new();
    for key in keys {
        if key == "roomd:nodes" || (key.starts_with("roomd:node:") && key.ends_with(":alive")) {
            continue;
        }
        let value: Vec<u8> = redis::cmd("DUMP")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap_or_else(|e| panic!("DUMP {key}: {e}"));
        dump.insert(key, value);
    }
    dump
}

/// Replaces a seeded room's name by its id.
fn room_id(text: &str, seeded: &Seeded) -> String {
    seeded.get(text).cloned().unwrap_or_else(|| text.to_owned())
}

/// Expands the case's `huge` field into its request.
fn expand_huge(case: &Case) -> Value {
    let mut request = case.field("request").cloned().unwrap_or_else(|| json!({}));
    let Some(huge) = case.field("huge") else {
        return request;
    };
    let text = |key: &str| huge.get(key).and_then(Value::as_str).unwrap_or_default();
    let field = text("field");
    let count = huge["count"].as_u64().expect("huge.count") as usize;
    let item = |i: usize| text("item").replace("%i", &i.to_string());

    let generated = match field {
        "acl" => Value::from((0..count).map(item).collect::<Vec<_>>()),
        "sort" => {
            let mut paths: Vec<Value> = (0..count).map(|i| json!({"path": item(i)})).collect();
            paths.push(json!({"path": text("last")}));
            Value::from(paths)
        }
        "custom" => Value::Object((0..count).map(|i| (item(i), json!(1))).collect()),
        "custom_nested" => {
            let mut nested = json!("deep");
            for _ in 0..count {
                nested = json!([nested]);
            }
            request["custom"] = json!({ text("item"): nested });
            return request;
        }
        _ => {
            let mut expansion = (0..count)
                .map(item)
                .collect::<Vec<_>>()
                .join(text("separator"));
            expansion.push_str(text("inner"));
            expansion.push_str(&text("suffix_item").repeat(count));
            let template = huge.get("template").and_then(Value::as_str).unwrap_or("%s");
            Value::String(template.replacen("%s", &expansion, 1))
        }
    };
    request[field] = generated;
    request
}

fn string(request: &Value, key: &str) -> String {
    request
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn strings(request: &Value, key: &str) -> Vec<String> {
    request
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn number(request: &Value, key: &str) -> Option<u64> {
    request.get(key).and_then(Value::as_u64)
}

fn custom(request: &Value) -> Option<prost_types::Struct> {
    if let Some(numbers) = request.get("custom_numbers").and_then(Value::as_object) {
        let fields = numbers
            .iter()
            .map(|(name, text)| {
                let number: f64 = text.as_str().unwrap_or_default().parse().expect("a float");
                let value = prost_types::Value {
                    kind: Some(prost_types::value::Kind::NumberValue(number)),
                };
                (name.clone(), value)
            })
            .collect();
        return Some(prost_types::Struct { fields });
    }
    let object = request.get("custom")?.as_object()?;
    let values: BTreeMap<String, Value> = object.clone().into_iter().collect();
    Some(convert::json_object_to_struct(&values))
}

fn configuration(request: &Value) -> Option<RoomConfigurationInput> {
    let input = request.get("configuration")?;
    let field = |key: &str| number(input, key).map(|n| n as u32);
    let open_at = input.get("open_at").map(|at| Timestamp {
        seconds: at["seconds"].as_i64().unwrap_or_default(),
        nanos: at["nanos"].as_i64().unwrap_or_default() as i32,
    });
    Some(RoomConfigurationInput {
        max_participants: field("max_participants"),
        unused_timeout: field("unused_timeout"),
        empty_timeout: field("empty_timeout"),
        max_duration: field("max_duration"),
        open_at,
    })
}

fn definition(request: &Value) -> Option<RoomDefinition> {
    let definition = request.get("definition")?;
    let properties = definition
        .get("properties")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| PropertyDefinition {
                    name: string(item, "name"),
                    label: string(item, "label"),
                    r#type: item["type"].as_i64().unwrap_or_default() as i32,
                    array: item["array"].as_bool().unwrap_or_default(),
                    indexed: item["indexed"].as_bool().unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(RoomDefinition {
        org: string(definition, "org"),
        label: string(definition, "label"),
        default_acl: strings(definition, "default_acl"),
        properties,
        max_open_rooms: number(definition, "max_open_rooms").map(|n| n as u32),
    })
}

/// Adds the case's metadata to `request`.
fn with_metadata<T>(case: &Case, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let metadata = request.metadata_mut();
    let ascii = case
        .field("metadata")
        .cloned()
        .unwrap_or_else(|| json!({"x-roomd-org": ORG_A}));
    for (key, value) in ascii.as_object().into_iter().flatten() {
        let key: AsciiMetadataKey = key.parse().expect("a metadata key");
        let value = MetadataValue::try_from(value.as_str().unwrap_or_default())
            .expect("an ASCII metadata value");
        metadata.insert(key, value);
    }
    for (key, value) in case
        .field("metadata_bytes")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let key: AsciiMetadataKey = key.parse().expect("a metadata key");
        let value = MetadataValue::try_from(bytes_of(value).as_slice())
            .expect("bytes that HTTP/2 carries in a header value");
        metadata.insert(key, value);
    }
    for (key, value) in case
        .field("metadata_binary")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let key: BinaryMetadataKey = key.parse().expect("a binary metadata key");
        metadata.insert_bin(key, MetadataValue::from_bytes(&bytes_of(value)));
    }
    request
}

/// Sends the case through the typed client and returns the call's status.
async fn call(case: &Case, channel: &Channel, seeded: &Seeded) -> Result<(), Status> {
    let request = expand_huge(case);
    let mut rooms = RoomsClient::new(channel.clone())
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let mut definitions = DefinitionsClient::new(channel.clone());
    let id = room_id(&string(&request, "room_id"), seeded);
    let account = string(&request, "account");

    match case.rpc() {
        "CreateRoom" => {
            let message = CreateRoomRequest {
                label: string(&request, "label"),
                acl: strings(&request, "acl"),
                owner: string(&request, "owner"),
                custom: custom(&request),
                configuration: configuration(&request),
                open: request["open"].as_bool().unwrap_or_default(),
                request_id: string(&request, "request_id"),
            };
            rooms
                .create_room(with_metadata(case, message))
                .await
                .map(drop)
        }
        "GetRoom" => {
            let message = GetRoomRequest { room_id: id };
            rooms.get_room(with_metadata(case, message)).await.map(drop)
        }
        "FindRooms" => {
            let sort = request
                .get("sort")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|field| SortField {
                    path: string(field, "path"),
                    descending: field["descending"].as_bool().unwrap_or_default(),
                })
                .collect();
            let message = FindRoomsRequest {
                filter_json: string(&request, "filter_json"),
                sort,
                limit: number(&request, "limit").unwrap_or_default() as u32,
                page_token: string(&request, "page_token"),
            };
            rooms
                .find_rooms(with_metadata(case, message))
                .await
                .map(drop)
        }
        "UpdateRoom" => {
            let message = UpdateRoomRequest {
                room_id: id,
                update_json: string(&request, "update_json"),
                expected_version: number(&request, "expected_version"),
            };
            rooms
                .update_room(with_metadata(case, message))
                .await
                .map(drop)
        }
        "CloseRoom" => {
            let message = CloseRoomRequest { room_id: id };
            rooms
                .close_room(with_metadata(case, message))
                .await
                .map(drop)
        }
        "DeleteRoom" => {
            let message = DeleteRoomRequest { room_id: id };
            rooms
                .delete_room(with_metadata(case, message))
                .await
                .map(drop)
        }
        "JoinRoom" => {
            let message = JoinRoomRequest {
                room_id: id,
                account,
            };
            rooms
                .join_room(with_metadata(case, message))
                .await
                .map(drop)
        }
        "LeaveRoom" => {
            let message = LeaveRoomRequest {
                room_id: id,
                account,
            };
            rooms
                .leave_room(with_metadata(case, message))
                .await
                .map(drop)
        }
        "ListParticipants" => {
            let message = ListParticipantsRequest { room_id: id };
            rooms
                .list_participants(with_metadata(case, message))
                .await
                .map(drop)
        }
        "WatchRoom" => {
            let message = WatchRoomRequest {
                room_id: id,
                from_seq: number(&request, "from_seq").unwrap_or_default(),
            };
            let mut stream = rooms
                .watch_room(with_metadata(case, message))
                .await?
                .into_inner();
            stream.message().await.map(drop)
        }
        "PutRoomDefinition" => {
            let message = PutRoomDefinitionRequest {
                definition: definition(&request),
            };
            definitions
                .put_room_definition(with_metadata(case, message))
                .await
                .map(drop)
        }
        "GetRoomDefinition" => {
            let message = GetRoomDefinitionRequest {};
            definitions
                .get_room_definition(with_metadata(case, message))
                .await
                .map(drop)
        }
        other => panic!("{}: unknown rpc {other:?}", case.label),
    }
}

/// Encodes the case's `raw_fields` as length-delimited protobuf fields, or
/// returns its `raw_message` bytes.
fn raw_message(case: &Case, seeded: &Seeded) -> Option<Vec<u8>> {
    if let Some(bytes) = case.field("raw_message") {
        return Some(bytes_of(bytes));
    }
    let fields = case.field("raw_fields")?.as_array()?;
    let mut message = Vec::new();
    for field in fields {
        let tag = field["tag"].as_u64().expect("raw_fields[].tag");
        let bytes = match field.get("text").and_then(Value::as_str) {
            Some(text) => room_id(text, seeded).into_bytes(),
            None => bytes_of(&field["bytes"]),
        };
        put_varint(&mut message, (tag << 3) | 2);
        put_varint(&mut message, bytes.len() as u64);
        message.extend(bytes);
    }
    Some(message)
}

fn bytes_of(value: &Value) -> Vec<u8> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|byte| byte.as_u64().map(|b| b as u8))
        .collect()
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A codec that sends a request's bytes as they are and ignores any reply,
/// for messages that the generated clients cannot build.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

/// Sends the raw bytes of a case to its method.
async fn call_raw(case: &Case, channel: &Channel, message: Vec<u8>) -> Result<(), Status> {
    let service = match case.rpc() {
        "PutRoomDefinition" | "GetRoomDefinition" => "roomd.v1.Definitions",
        _ => "roomd.v1.Rooms",
    };
    let path = format!("/{service}/{}", case.rpc());
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).expect("a method path");
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
    grpc.unary(with_metadata(case, message), path, RawCodec)
        .await
        .map(drop)
}

/// Compares the status of a case with its `expect`; returns what differs.
fn check(case: &Case, result: Result<(), Status>) -> Option<String> {
    let status = match result {
        Ok(()) => return Some(format!("{}: succeeded", case.label)),
        Err(status) => status,
    };
    let expect = case.field("expect").cloned().unwrap_or_default();
    let codes: Vec<&str> = match expect.get("codes").and_then(Value::as_array) {
        Some(codes) => codes.iter().filter_map(Value::as_str).collect(),
        None => vec![expect["code"].as_str().unwrap_or_default()],
    };
    let code = format!("{:?}", status.code());
    if !codes.contains(&code.as_str()) {
        return Some(format!(
            "{}: code {code}, expected one of {codes:?}: {}",
            case.label,
            status.message()
        ));
    }

    let reason = expect.get("reason").and_then(Value::as_str);
    let mut path = expect.get("path").and_then(Value::as_str);
    if status.code() == Code::InvalidArgument && path.is_none() {
        path = expect.get("path_if_validation").and_then(Value::as_str);
    }
    let Some(info) = status.get_details_error_info() else {
        return Some(format!(
            "{}: ErrorInfo missing from {code}: {}",
            case.label,
            status.message()
        ));
    };
    if let Some(reason) = reason
        && info.reason != reason
    {
        return Some(format!(
            "{}: reason {:?}, expected {reason:?}",
            case.label, info.reason
        ));
    }
    if info.domain != "roomd" {
        return Some(format!("{}: domain {:?}", case.label, info.domain));
    }
    if let Some(path) = path
        && info.metadata.get("path").map(String::as_str) != Some(path)
    {
        return Some(format!(
            "{}: path {:?}, expected {path:?}: {}",
            case.label,
            info.metadata.get("path"),
            status.message()
        ));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_faults_and_changes_nothing() {
    let redis = RedisServer::spawn().await;
    let node = RoomdProcess::spawn_clustered(&["--redis-url".to_owned(), redis.url()]).await;
    let channel = roomd_tests::connect(node.address).await;
    let seeded = seed(channel.clone()).await;
    let cases = read_corpus();
    assert!(
        cases.len() > 100,
        "only {} cases in the corpus",
        cases.len()
    );

    let before = dump_store(&redis).await;
    assert!(
        before.keys().any(|key| key.starts_with("roomd:room:")),
        "no room keys among {:?}",
        before.keys()
    );

    let mut failures = Vec::new();
    for case in &cases {
        let result = match raw_message(case, &seeded) {
            Some(message) => call_raw(case, &channel, message).await,
            None => call(case, &channel, &seeded).await,
        };
        failures.extend(check(case, result));
    }
    let after = dump_store(&redis).await;
    let changed: BTreeSet<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|key| before.get(*key) != after.get(*key))
        .collect();

    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\nchanged keys: {changed:?}\nroomd log:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        node.log()
    );
    assert!(
        changed.is_empty(),
        "bad input changed these keys: {changed:?}"
    );
    assert!(
        node.is_serving().await,
        "roomd stopped serving:\n{}",
        node.log()
    );
}
