//! The room record and its state machine.
//!
//! ```text
//!   new ──(setup done, openAt reached)──► open
//!    │                                     │
//!    └──────────────► closed ◄─────────────┘
//! ```
//!
//! Every mutating method either returns the events of one accepted change,
//! with the room's version bumped once, or returns a fault and leaves the room
//! untouched. Timer deadlines are absolute times kept in the room, so any node
//! that loads the room can re-arm them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::acl::{AclEntry, Level, Principal};
use crate::definition::RoomDefinition;
use crate::error::{RoomError, RoomResult};
use crate::event::{Event, EventName};
use crate::limits::Limits;
use crate::validate;

pub const MIN_PARTICIPANTS: u32 = 2;
pub const MAX_PARTICIPANTS: u32 = 500;
/// Bounds of every room timeout, in seconds: 1 s to 24 h.
pub const MIN_TIMEOUT_SECS: u32 = 1;
pub const MAX_TIMEOUT_SECS: u32 = 24 * 60 * 60;

/// Server-assigned room id, a UUID v7 so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(Uuid);

impl RoomId {
    pub fn generate() -> Self {
        RoomId(Uuid::now_v7())
    }

    /// Parses a room id sent by a client, reporting a fault at `path`.
    pub fn parse_at(path: &str, text: &str) -> RoomResult<Self> {
        text.parse()
            .map_err(|_| RoomError::validation(path, format!("{text:?} is not a room id (a UUID)")))
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RoomId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(RoomId)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomState {
    New,
    Open,
    Closed,
}

impl RoomState {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomState::New => "new",
            RoomState::Open => "open",
            RoomState::Closed => "closed",
        }
    }
}

impl FromStr for RoomState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "new" => Ok(RoomState::New),
            "open" => Ok(RoomState::Open),
            "closed" => Ok(RoomState::Closed),
            _ => Err(format!("unknown state {s:?}; expected new, open or closed")),
        }
    }
}

impl fmt::Display for RoomState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Requested,
    UnusedTimeout,
    EmptyTimeout,
    MaxDuration,
    Deleted,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Requested => "requested",
            CloseReason::UnusedTimeout => "unused_timeout",
            CloseReason::EmptyTimeout => "empty_timeout",
            CloseReason::MaxDuration => "max_duration",
            CloseReason::Deleted => "deleted",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Effective configuration of a room; server defaults are resolved at
/// creation so the room carries every value it runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    pub max_participants: u32,
    /// Seconds from opening until the room closes unless someone joined.
    pub unused_timeout: u32,
    /// Seconds from the last leave until the room closes unless someone joins.
    pub empty_timeout: u32,
    /// Seconds from opening until the room closes regardless; none when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_at: Option<DateTime<Utc>>,
}

/// Configuration requested at creation; absent values take the defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigurationInput {
    pub max_participants: Option<u32>,
    pub unused_timeout: Option<u32>,
    pub empty_timeout: Option<u32>,
    pub max_duration: Option<u32>,
    pub open_at: Option<DateTime<Utc>>,
}

/// Server-wide defaults for room configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomDefaults {
    pub max_participants: u32,
    pub unused_timeout: u32,
    pub empty_timeout: u32,
    pub max_duration: Option<u32>,
}

impl Default for RoomDefaults {
    fn default() -> Self {
        RoomDefaults {
            max_participants: MIN_PARTICIPANTS,
            unused_timeout: 300,
            empty_timeout: 300,
            max_duration: None,
        }
    }
}

impl RoomDefaults {
    /// Checks that every default lies within the bounds a room accepts.
    pub fn check(&self) -> RoomResult<()> {
        check_max_participants("maxParticipants", self.max_participants)?;
        check_timeout("unusedTimeout", self.unused_timeout)?;
        check_timeout("emptyTimeout", self.empty_timeout)?;
        if let Some(max) = self.max_duration {
            check_timeout("maxDuration", max)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantStatus {
    Connected,
    Disconnected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    pub account: String,
    pub status: ParticipantStatus,
    pub joined: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<DateTime<Utc>>,
}

/// Absolute times at which the room's running timers fire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deadlines {
    /// When a `new` room opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unused: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<DateTime<Utc>>,
}

/// A create request, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewRoom {
    pub label: String,
    pub acl: Vec<String>,
    pub owner: Option<String>,
    pub custom: BTreeMap<String, Value>,
    pub configuration: ConfigurationInput,
    /// Create the room open instead of `new`.
    pub open: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    #[default]
    Room,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    #[serde(rename = "_id")]
    pub id: RoomId,
    #[serde(default)]
    pub object: ObjectKind,
    pub org: String,
    pub label: String,
    pub state: RoomState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<CloseReason>,
    pub acl: Vec<AclEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    pub configuration: Configuration,
    pub participants: Vec<Participant>,
    /// Custom `c_*` values, at the top level of the JSON form.
    #[serde(flatten)]
    pub custom: BTreeMap<String, Value>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    pub version: u64,
    /// Sequence number of the room's last event.
    pub last_seq: u64,
    #[serde(default)]
    pub deadlines: Deadlines,
}

/// The timers a room runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Open,
    Unused,
    Empty,
    MaxDuration,
}

impl Timer {
    pub fn as_str(self) -> &'static str {
        match self {
            Timer::Open => "open",
            Timer::Unused => "unused",
            Timer::Empty => "empty",
            Timer::MaxDuration => "max_duration",
        }
    }
}

/// One event of a change, before it gets its sequence number.
pub(crate) struct EventDraft {
    pub name: EventName,
    pub account_id: Option<String>,
    pub reason: Option<String>,
}

impl EventDraft {
    pub fn new(name: EventName) -> Self {
        EventDraft {
            name,
            account_id: None,
            reason: None,
        }
    }

    pub fn by(mut self, account_id: Option<&str>) -> Self {
        self.account_id = account_id.map(str::to_owned);
        self
    }

    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

impl Room {
    /// Validates a create request within `limits` and builds the room with
    /// its first events: `room.created`, plus `room.opened` when the request
    /// sets `open`.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        id: RoomId,
        org: &str,
        request: NewRoom,
        definition: &RoomDefinition,
        defaults: &RoomDefaults,
        limits: &Limits,
        principal: &Principal,
        now: DateTime<Utc>,
    ) -> RoomResult<(Room, Vec<Event>)> {
        if matches!(principal, Principal::Anonymous { .. }) {
            return Err(RoomError::Unauthenticated {
                message: "anonymous callers cannot create rooms".into(),
            });
        }
        validate::identifier("org", org)?;
        validate::label("label", &request.label, limits.max_label_chars)?;

        let acl = merge_acl(&definition.default_acl, &request.acl, limits)?;
        let owner = match request.owner {
            Some(owner) => {
                validate::account("owner", &owner)?;
                Some(owner)
            }
            None => principal.account_id().map(str::to_owned),
        };
        for name in request.custom.keys() {
            if !name.starts_with("c_") {
                return Err(RoomError::validation(
                    name.as_str(),
                    "is not a room field; custom properties start with c_",
                ));
            }
        }
        let custom = definition.check_values(&request.custom, limits)?;
        let configuration = resolve_configuration(&request.configuration, defaults)?;
        if request.open && configuration.open_at.is_some_and(|at| at > now) {
            return Err(RoomError::validation(
                "configuration.openAt",
                "lies in the future, so the room cannot be created open",
            ));
        }

        let open_deadline = configuration.open_at.map_or(now, |at| at.max(now));
        let mut room = Room {
            id,
            object: ObjectKind::Room,
            org: org.to_owned(),
            label: request.label,
            state: RoomState::New,
            close_reason: None,
            acl,
            owner,
            creator: principal.account_id().map(str::to_owned),
            configuration,
            participants: Vec::new(),
            custom,
            created: now,
            updated: now,
            opened_at: None,
            closed_at: None,
            version: 0,
            last_seq: 0,
            deadlines: Deadlines {
                open: Some(open_deadline),
                ..Deadlines::default()
            },
        };

        let actor = principal.account_id();
        let mut drafts = vec![EventDraft::new(EventName::RoomCreated).by(actor)];
        if request.open {
            drafts.push(room.open_now(now));
        }
        let events = room.record_change(now, drafts);
        Ok((room, events))
    }

    /// Returns `principal`'s access level, or `None` when it has none.
    pub fn access(&self, principal: &Principal) -> Option<Level> {
        principal.access_level(&self.acl, self.owner.as_deref())
    }

    /// Fails unless `principal` may read the room and has at least `level`.
    pub fn require(&self, principal: &Principal, level: Level) -> RoomResult<Level> {
        let granted = self.access(principal);
        let denied = |required| RoomError::AccessDenied {
            room_id: self.id.to_string(),
            required,
        };
        match granted {
            Some(granted) if granted >= level => Ok(granted),
            Some(granted) if granted >= Level::Read => Err(denied(level)),
            _ => Err(denied(Level::Read)),
        }
    }

    pub fn connected_count(&self) -> usize {
        self.participants
            .iter()
            .filter(|p| p.status == ParticipantStatus::Connected)
            .count()
    }

    pub fn participant(&self, account: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.account == account)
    }

    /// Opens a `new` room. The server calls this once the room is durable,
    /// owned and its `openAt` has passed; clients cannot.
    pub fn open(&mut self, now: DateTime<Utc>) -> RoomResult<Vec<Event>> {
        match self.state {
            RoomState::New => {
                let draft = self.open_now(now);
                Ok(self.record_change(now, vec![draft]))
            }
            RoomState::Open => Err(self.transition_fault(RoomState::Open)),
            RoomState::Closed => Err(self.closed_fault()),
        }
    }

    /// Adds `account` (the acting account when `None`) as a connected
    /// participant. Joining oneself needs `read`; joining someone else
    /// needs `update`. A join by an account already connected changes
    /// nothing and returns no events.
    pub fn join(
        &mut self,
        principal: &Principal,
        account: Option<&str>,
        now: DateTime<Utc>,
    ) -> RoomResult<Vec<Event>> {
        let account = self.participant_account(principal, account)?;
        self.require_open()?;

        if self
            .participant(&account)
            .is_some_and(|p| p.status == ParticipantStatus::Connected)
        {
            return Ok(Vec::new());
        }
        let max = self.configuration.max_participants;
        if self.connected_count() >= max as usize {
            return Err(RoomError::MaxParticipants {
                room_id: self.id.to_string(),
                max,
            });
        }

        match self.participants.iter_mut().find(|p| p.account == account) {
            Some(participant) => {
                participant.status = ParticipantStatus::Connected;
                participant.joined = now;
                participant.left = None;
            }
            None => self.participants.push(Participant {
                account: account.clone(),
                status: ParticipantStatus::Connected,
                joined: now,
                left: None,
            }),
        }
        self.deadlines.unused = None;
        self.deadlines.empty = None;

        let draft = EventDraft::new(EventName::ParticipantJoined).by(Some(&account));
        Ok(self.record_change(now, vec![draft]))
    }

    /// Marks `account` (the acting account when `None`) disconnected and
    /// starts the empty timer when no participant is still connected. Leaving for oneself needs
    /// `read`, for someone else `update`. Leaving when not connected changes
    /// nothing.
    pub fn leave(
        &mut self,
        principal: &Principal,
        account: Option<&str>,
        now: DateTime<Utc>,
    ) -> RoomResult<Vec<Event>> {
        let account = self.participant_account(principal, account)?;
        self.require_open()?;

        let Some(participant) = self
            .participants
            .iter_mut()
            .find(|p| p.account == account && p.status == ParticipantStatus::Connected)
        else {
            return Ok(Vec::new());
        };
        participant.status = ParticipantStatus::Disconnected;
        participant.left = Some(now);

        if self.connected_count() == 0 {
            self.deadlines.empty = Some(now + seconds(self.configuration.empty_timeout));
        }
        let draft = EventDraft::new(EventName::ParticipantLeft).by(Some(&account));
        Ok(self.record_change(now, vec![draft]))
    }

    /// Closes the room on a client's request; needs `update`.
    pub fn close(&mut self, principal: &Principal, now: DateTime<Utc>) -> RoomResult<Vec<Event>> {
        self.require(principal, Level::Update)?;
        if self.state == RoomState::Closed {
            return Err(self.closed_fault());
        }
        let drafts = self.close_now(CloseReason::Requested, principal.account_id(), now);
        Ok(self.record_change(now, drafts))
    }

    /// Closes the room with the reason `deleted`, ahead of its removal from
    /// the store; needs `delete`. A room already closed keeps its reason and
    /// returns no events.
    pub fn delete(&mut self, principal: &Principal, now: DateTime<Utc>) -> RoomResult<Vec<Event>> {
        self.require(principal, Level::Delete)?;
        if self.state == RoomState::Closed {
            return Ok(Vec::new());
        }
        let drafts = self.close_now(CloseReason::Deleted, principal.account_id(), now);
        Ok(self.record_change(now, drafts))
    }

    /// Returns the next deadline among the running timers.
    pub fn next_deadline(&self) -> Option<(DateTime<Utc>, Timer)> {
        match self.state {
            RoomState::New => self.deadlines.open.map(|at| (at, Timer::Open)),
            RoomState::Open => [
                (self.deadlines.unused, Timer::Unused),
                (self.deadlines.empty, Timer::Empty),
                (self.deadlines.max_duration, Timer::MaxDuration),
            ]
            .into_iter()
            .filter_map(|(at, timer)| at.map(|at| (at, timer)))
            .min_by_key(|(at, _)| *at),
            RoomState::Closed => None,
        }
    }

    /// Applies the timer that is due at `now`, if any: opens a `new` room or
    /// closes an open one with the timer's reason.
    pub fn fire_due_timer(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        let Some((at, timer)) = self.next_deadline() else {
            return Vec::new();
        };
        if at > now {
            return Vec::new();
        }
        let drafts = match timer {
            Timer::Open => vec![self.open_now(now)],
            Timer::Unused => self.close_now(CloseReason::UnusedTimeout, None, now),
            Timer::Empty => self.close_now(CloseReason::EmptyTimeout, None, now),
            Timer::MaxDuration => self.close_now(CloseReason::MaxDuration, None, now),
        };
        self.record_change(now, drafts)
    }

    pub(crate) fn require_not_closed(&self) -> RoomResult<()> {
        if self.state == RoomState::Closed {
            Err(self.closed_fault())
        } else {
            Ok(())
        }
    }

    pub(crate) fn closed_fault(&self) -> RoomError {
        RoomError::Closed {
            room_id: self.id.to_string(),
        }
    }

    pub(crate) fn transition_fault(&self, to: RoomState) -> RoomError {
        RoomError::Transition {
            room_id: self.id.to_string(),
            from: self.state.to_string(),
            to: to.to_string(),
        }
    }

    /// Bumps the version once for a change and turns its drafts into events
    /// with consecutive sequence numbers.
    pub(crate) fn record_change(
        &mut self,
        now: DateTime<Utc>,
        drafts: Vec<EventDraft>,
    ) -> Vec<Event> {
        self.version += 1;
        self.updated = now;
        drafts
            .into_iter()
            .map(|draft| {
                self.last_seq += 1;
                Event {
                    seq: self.last_seq,
                    object_type: draft.name.object_type(),
                    name: draft.name,
                    room_id: self.id,
                    account_id: draft.account_id,
                    reason: draft.reason,
                    at: now,
                    version: self.version,
                    epoch: 0,
                }
            })
            .collect()
    }

    /// Moves the room to `closed`, disconnecting everyone. The caller has
    /// checked that the room is not closed yet.
    pub(crate) fn close_now(
        &mut self,
        reason: CloseReason,
        account: Option<&str>,
        now: DateTime<Utc>,
    ) -> Vec<EventDraft> {
        debug_assert_ne!(self.state, RoomState::Closed);

        let mut drafts = Vec::new();
        for participant in &mut self.participants {
            if participant.status == ParticipantStatus::Connected {
                participant.status = ParticipantStatus::Disconnected;
                participant.left = Some(now);
                drafts.push(
                    EventDraft::new(EventName::ParticipantLeft)
                        .by(Some(&participant.account))
                        .because(reason.as_str()),
                );
            }
        }
        self.state = RoomState::Closed;
        self.close_reason = Some(reason);
        self.closed_at = Some(now);
        self.deadlines = Deadlines::default();
        drafts.push(
            EventDraft::new(EventName::RoomClosed)
                .by(account)
                .because(reason.as_str()),
        );
        drafts
    }

    /// Re-arms the running timers after a configuration change: each keeps
    /// its start and takes the new length, so a deadline already past fires
    /// at once.
    pub(crate) fn rearm_timers(&mut self, old: &Configuration) {
        let opened = self.opened_at;
        if let (Some(opened), Some(_)) = (opened, self.deadlines.unused) {
            self.deadlines.unused = Some(opened + seconds(self.configuration.unused_timeout));
        }
        if let Some(empty) = self.deadlines.empty {
            let started = empty - seconds(old.empty_timeout);
            self.deadlines.empty = Some(started + seconds(self.configuration.empty_timeout));
        }
        if let Some(opened) = opened {
            self.deadlines.max_duration = self
                .configuration
                .max_duration
                .map(|max| opened + seconds(max));
        }
        if self.state == RoomState::New {
            self.deadlines.open = Some(self.configuration.open_at.unwrap_or(self.created));
        }
    }

    fn open_now(&mut self, now: DateTime<Utc>) -> EventDraft {
        self.state = RoomState::Open;
        self.opened_at = Some(now);
        self.deadlines = Deadlines {
            open: None,
            unused: Some(now + seconds(self.configuration.unused_timeout)),
            empty: None,
            max_duration: self
                .configuration
                .max_duration
                .map(|max| now + seconds(max)),
        };
        EventDraft::new(EventName::RoomOpened)
    }

    fn require_open(&self) -> RoomResult<()> {
        match self.state {
            RoomState::Open => Ok(()),
            RoomState::New => Err(RoomError::NotOpen {
                room_id: self.id.to_string(),
            }),
            RoomState::Closed => Err(self.closed_fault()),
        }
    }

    /// Resolves the account a join or leave is for and checks the caller's
    /// access: `read` for oneself, `update` for anyone else.
    fn participant_account(
        &self,
        principal: &Principal,
        account: Option<&str>,
    ) -> RoomResult<String> {
        let acting = principal.account_id();
        let account = match (account.filter(|a| !a.is_empty()), acting) {
            (Some(account), _) => account,
            (None, Some(acting)) => acting,
            (None, None) => {
                self.require(principal, Level::Read)?;
                return Err(RoomError::validation(
                    "account",
                    "is required when the caller acts for no account",
                ));
            }
        };
        validate::account("account", account)?;

        let needed = if Some(account) == acting {
            Level::Read
        } else {
            Level::Update
        };
        self.require(principal, needed)?;
        Ok(account.to_owned())
    }
}

pub(crate) fn seconds(secs: u32) -> Duration {
    Duration::seconds(i64::from(secs))
}

pub(crate) fn check_timeout(path: &str, secs: u32) -> RoomResult<()> {
    if (MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(&secs) {
        Ok(())
    } else {
        Err(RoomError::validation(
            path,
            format!("{secs} s is outside {MIN_TIMEOUT_SECS} s to {MAX_TIMEOUT_SECS} s"),
        ))
    }
}

pub(crate) fn check_max_participants(path: &str, max: u32) -> RoomResult<()> {
    if (MIN_PARTICIPANTS..=MAX_PARTICIPANTS).contains(&max) {
        Ok(())
    } else {
        Err(RoomError::validation(
            path,
            format!("{max} is outside {MIN_PARTICIPANTS} to {MAX_PARTICIPANTS}"),
        ))
    }
}

/// Parses ACL entries and appends the ones not already in `base`.
pub(crate) fn merge_acl(
    base: &[AclEntry],
    extra: &[String],
    limits: &Limits,
) -> RoomResult<Vec<AclEntry>> {
    let mut acl = base.to_vec();
    for (i, text) in extra.iter().enumerate() {
        let entry = AclEntry::parse_at(&format!("acl[{i}]"), text)?;
        push_distinct("acl", &mut acl, entry, limits.max_acl_entries)?;
    }
    Limits::check_growth("acl", 0, acl.len(), limits.max_acl_entries)?;
    Ok(acl)
}

/// Appends `entry` unless `acl` already contains it, and fails when the
/// entry would give `acl` more than `max` distinct entries. Failing early
/// keeps the cost of a request with a huge list linear in its length,
/// where deduplicating the whole list first would be quadratic.
pub(crate) fn push_distinct(
    path: &str,
    acl: &mut Vec<AclEntry>,
    entry: AclEntry,
    max: usize,
) -> RoomResult<()> {
    if acl.contains(&entry) {
        return Ok(());
    }
    if acl.len() >= max {
        return Err(RoomError::validation(
            path,
            format!("has more than {max} distinct entries; the limit is {max}"),
        ));
    }
    acl.push(entry);
    Ok(())
}

fn resolve_configuration(
    input: &ConfigurationInput,
    defaults: &RoomDefaults,
) -> RoomResult<Configuration> {
    let configuration = Configuration {
        max_participants: input.max_participants.unwrap_or(defaults.max_participants),
        unused_timeout: input.unused_timeout.unwrap_or(defaults.unused_timeout),
        empty_timeout: input.empty_timeout.unwrap_or(defaults.empty_timeout),
        max_duration: input.max_duration.or(defaults.max_duration),
        open_at: input.open_at,
    };
    check_max_participants(
        "configuration.maxParticipants",
        configuration.max_participants,
    )?;
    check_timeout("configuration.unusedTimeout", configuration.unused_timeout)?;
    check_timeout("configuration.emptyTimeout", configuration.empty_timeout)?;
    if let Some(max) = configuration.max_duration {
        check_timeout("configuration.maxDuration", max)?;
    }
    Ok(configuration)
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::definition::{PropertyDefinition, PropertyType};

    pub fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .into()
    }

    pub fn definition() -> RoomDefinition {
        RoomDefinition::new(
            "org1",
            "Room",
            &[],
            vec![
                PropertyDefinition {
                    name: "c_number".into(),
                    label: "Number".into(),
                    kind: PropertyType::Number,
                    array: false,
                    indexed: true,
                },
                PropertyDefinition {
                    name: "c_tags".into(),
                    label: "Tags".into(),
                    kind: PropertyType::String,
                    array: true,
                    indexed: false,
                },
            ],
        )
        .unwrap()
    }

    pub fn open_room(acl: &[&str]) -> Room {
        let request = NewRoom {
            label: "Visit".into(),
            acl: acl.iter().map(|e| e.to_string()).collect(),
            open: true,
            ..NewRoom::default()
        };
        let (room, _) = Room::create(
            RoomId::generate(),
            "org1",
            request,
            &definition(),
            &RoomDefaults::default(),
            &Limits::default(),
            &Principal::account("owner1"),
            t0(),
        )
        .unwrap();
        room
    }

    fn create_within(limits: &Limits, request: NewRoom) -> RoomResult<(Room, Vec<Event>)> {
        Room::create(
            RoomId::generate(),
            "org1",
            request,
            &definition(),
            &RoomDefaults::default(),
            limits,
            &Principal::Service,
            t0(),
        )
    }

    #[test]
    fn create_starts_new_with_open_deadline_now() {
        let request = NewRoom {
            label: "Visit".into(),
            custom: [("c_number".to_string(), json!(7))].into(),
            ..NewRoom::default()
        };
        let (room, events) = create_within(&Limits::default(), request).unwrap();
        assert_eq!(room.state, RoomState::New);
        assert_eq!(room.deadlines.open, Some(t0()));
        assert_eq!(room.version, 1);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, EventName::RoomCreated);
        assert_eq!(room.custom["c_number"], json!(7));
    }

    #[test]
    fn create_rejects_unknown_property_and_bad_config() {
        let mut request = NewRoom {
            label: "Visit".into(),
            custom: [("c_missing".to_string(), json!(1))].into(),
            ..NewRoom::default()
        };
        let create = |request: NewRoom| create_within(&Limits::default(), request);
        assert_eq!(
            create(request.clone()).unwrap_err().metadata(),
            vec![("path", "c_missing".into())]
        );

        request.custom.clear();
        request.configuration.max_participants = Some(1);
        let err = create(request.clone()).unwrap_err();
        assert_eq!(
            err.metadata(),
            vec![("path", "configuration.maxParticipants".into())]
        );

        request.configuration.max_participants = None;
        request.configuration.unused_timeout = Some(0);
        assert!(create(request.clone()).is_err());

        request.configuration.unused_timeout = None;
        request.label = String::new();
        assert!(create(request).is_err());
    }

    #[test]
    fn create_label_at_and_over_the_limit() {
        let limits = Limits {
            max_label_chars: 4,
            ..Limits::default()
        };
        let at = NewRoom {
            label: "äbcd".into(),
            ..NewRoom::default()
        };
        assert!(create_within(&limits, at).is_ok());
        let over = NewRoom {
            label: "äbcde".into(),
            ..NewRoom::default()
        };
        let err = create_within(&limits, over).unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "label".into())]);
        assert!(err.to_string().contains("the limit is 4"), "{err}");
    }

    #[test]
    fn create_label_ceiling_by_default() {
        let at = NewRoom {
            label: "x".repeat(crate::limits::MAX_LABEL_CHARS),
            ..NewRoom::default()
        };
        assert!(create_within(&Limits::default(), at).is_ok());
        let over = NewRoom {
            label: "x".repeat(crate::limits::MAX_LABEL_CHARS + 1),
            ..NewRoom::default()
        };
        assert!(create_within(&Limits::default(), over).is_err());
    }

    #[test]
    fn create_acl_at_and_over_the_limit() {
        // The definition's default ACL adds owner.delete to each room.
        let limits = Limits {
            max_acl_entries: 3,
            ..Limits::default()
        };
        let entries = |n: usize| (0..n).map(|i| format!("account.a{i}.read")).collect();
        let at = NewRoom {
            label: "Visit".into(),
            acl: entries(2),
            ..NewRoom::default()
        };
        assert_eq!(create_within(&limits, at).unwrap().0.acl.len(), 3);
        let over = NewRoom {
            label: "Visit".into(),
            acl: entries(3),
            ..NewRoom::default()
        };
        let err = create_within(&limits, over).unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "acl".into())]);
        assert!(err.to_string().contains("the limit is 3"), "{err}");
    }

    #[test]
    fn create_custom_properties_at_and_over_the_limit() {
        let limits = Limits {
            max_custom_properties: 1,
            ..Limits::default()
        };
        let at = NewRoom {
            label: "Visit".into(),
            custom: [("c_number".to_string(), json!(7))].into(),
            ..NewRoom::default()
        };
        assert!(create_within(&limits, at).is_ok());
        let over = NewRoom {
            label: "Visit".into(),
            custom: [
                ("c_number".to_string(), json!(7)),
                ("c_tags".to_string(), json!(["a"])),
            ]
            .into(),
            ..NewRoom::default()
        };
        let err = create_within(&limits, over).unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "custom".into())]);
        assert!(err.to_string().contains("the limit is 1"), "{err}");
    }

    #[test]
    fn open_timer_opens_and_arms_unused() {
        let request = NewRoom {
            label: "Visit".into(),
            ..NewRoom::default()
        };
        let (mut room, _) = create_within(&Limits::default(), request).unwrap();
        let events = room.fire_due_timer(t0());
        assert_eq!(events[0].name, EventName::RoomOpened);
        assert_eq!(room.state, RoomState::Open);
        assert_eq!(room.deadlines.unused, Some(t0() + seconds(300)));
        assert_eq!(room.next_deadline().unwrap().1, Timer::Unused);
    }

    #[test]
    fn unused_timer_closes_room() {
        let mut room = open_room(&[]);
        assert!(room.fire_due_timer(t0() + seconds(299)).is_empty());
        let events = room.fire_due_timer(t0() + seconds(300));
        assert_eq!(events.last().unwrap().name, EventName::RoomClosed);
        assert_eq!(room.close_reason, Some(CloseReason::UnusedTimeout));
        assert_eq!(room.next_deadline(), None);
    }

    #[test]
    fn join_cancels_unused_and_leave_arms_empty() {
        let mut room = open_room(&["account.public.read"]);
        room.join(&Principal::account("acc1"), None, t0()).unwrap();
        assert_eq!(room.deadlines.unused, None);

        let later = t0() + seconds(10);
        room.leave(&Principal::account("acc1"), None, later)
            .unwrap();
        assert_eq!(room.deadlines.empty, Some(later + seconds(300)));

        room.fire_due_timer(later + seconds(300));
        assert_eq!(room.close_reason, Some(CloseReason::EmptyTimeout));
    }

    #[test]
    fn join_twice_changes_nothing() {
        let mut room = open_room(&["account.public.read"]);
        let principal = Principal::account("acc1");
        assert_eq!(room.join(&principal, None, t0()).unwrap().len(), 1);
        let version = room.version;
        assert!(room.join(&principal, None, t0()).unwrap().is_empty());
        assert_eq!(room.version, version);
    }

    #[test]
    fn join_respects_max_participants() {
        let mut room = open_room(&["account.public.read"]);
        room.join(&Principal::account("a"), None, t0()).unwrap();
        room.join(&Principal::account("b"), None, t0()).unwrap();
        let err = room.join(&Principal::account("c"), None, t0()).unwrap_err();
        assert_eq!(err.reason(), "limit.maxParticipants");
        assert_eq!(room.connected_count(), 2);
    }

    #[test]
    fn joining_someone_else_needs_update() {
        let mut room = open_room(&["account.acc1.read"]);
        let err = room
            .join(&Principal::account("acc1"), Some("acc2"), t0())
            .unwrap_err();
        assert_eq!(err.reason(), "accessDenied.update");
        assert!(room.participants.is_empty());
    }

    #[test]
    fn join_needs_open_room() {
        let mut room = open_room(&["account.public.read"]);
        room.close(&Principal::Service, t0()).unwrap();
        let err = room.join(&Principal::account("a"), None, t0()).unwrap_err();
        assert_eq!(err.reason(), "invalidState.closed");
    }

    #[test]
    fn close_disconnects_everyone_once() {
        let mut room = open_room(&["account.public.read"]);
        room.join(&Principal::account("a"), None, t0()).unwrap();
        let events = room.close(&Principal::Service, t0()).unwrap();
        let names: Vec<_> = events.iter().map(|e| e.name).collect();
        assert_eq!(names, [EventName::ParticipantLeft, EventName::RoomClosed]);
        assert_eq!(room.participants[0].status, ParticipantStatus::Disconnected);
        assert_eq!(
            room.close(&Principal::Service, t0()).unwrap_err().reason(),
            "invalidState.closed"
        );
    }

    #[test]
    fn read_only_account_cannot_close() {
        let mut room = open_room(&["account.acc1.read"]);
        let err = room.close(&Principal::account("acc1"), t0()).unwrap_err();
        assert_eq!(err.reason(), "accessDenied.update");
        let err = room.close(&Principal::account("acc3"), t0()).unwrap_err();
        assert_eq!(err.reason(), "accessDenied.read");
        assert_eq!(room.state, RoomState::Open);
    }

    #[test]
    fn events_have_consecutive_seq() {
        let mut room = open_room(&["account.public.read"]);
        let mut seqs = vec![];
        seqs.extend(room.join(&Principal::account("a"), None, t0()).unwrap());
        seqs.extend(room.close(&Principal::Service, t0()).unwrap());
        let seqs: Vec<u64> = seqs.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(room.last_seq, 5);
    }

    #[test]
    fn room_json_uses_api_field_names() {
        let mut room = open_room(&[]);
        room.custom.insert("c_number".into(), json!(7));
        let value = serde_json::to_value(&room).unwrap();
        assert_eq!(value["object"], "room");
        assert_eq!(value["state"], "open");
        assert_eq!(value["c_number"], 7);
        assert_eq!(value["configuration"]["maxParticipants"], 2);
        assert!(value.get("_id").is_some());
        let back: Room = serde_json::from_value(value).unwrap();
        assert_eq!(back, room);
    }
}
