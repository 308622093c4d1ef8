//! The phone's side of push: a durable queue of mutations. (The same
//! [`ClientState`] also holds the pull side: cookie and scope copy, see `replica.rs`.)
//!
//! Sans-IO: [`generate_message`] says what to send, [`receive_message`] takes what
//! came back; sending, timers and storage belong to the caller. The caller keeps
//! [`ClientState`] durable (it is `Serialize`/`Deserialize`): persist it after
//! [`ClientState::record`] before telling the technician "saved", and after each
//! [`receive_message`].
//!
//! Pushing is idempotent: the server applies each mutation id once, so the caller
//! may call [`generate_message`] again and resend whenever an answer is overdue.
//! Acknowledgements are cumulative, so an old or duplicated one changes nothing.

use crate::cookie::Cookie;
use crate::message::{ClientId, Mutation, MutationId, PushMessage, ServerMessage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Mutations sent in one push at most, unless set with [`ClientState::with_max_batch`].
pub const DEFAULT_MAX_BATCH: usize = 100;

/// One device's queue: every mutation recorded and not yet acknowledged, in order.
///
/// Invariants (checked when a stored state is read back): the pending ids are exactly
/// `last_acknowledged + 1 ..= last_issued`; the acknowledged mutations kept for the
/// optimistic view are `pulled_mutation_id + 1 ..= last_acknowledged`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredState")]
pub struct ClientState {
    pub(crate) client_id: ClientId,
    pub(crate) last_issued: MutationId,
    pub(crate) last_acknowledged: MutationId,
    pub(crate) pending: VecDeque<Mutation>,
    pub(crate) max_batch: usize,
    // Pull side (see `replica.rs`).
    /// The cursor of `confirmed`; `None` before the first pull.
    pub(crate) cookie: Option<Cookie>,
    /// The scope as the server last sent it: key → value.
    pub(crate) confirmed: BTreeMap<String, serde_json::Value>,
    /// The device's `last_mutation_id` in the pull that gave `confirmed`.
    pub(crate) pulled_mutation_id: MutationId,
    /// Acknowledged mutations whose effect `confirmed` does not show yet (ids
    /// `pulled_mutation_id + 1 ..= last_acknowledged`); kept for the optimistic view.
    pub(crate) awaiting_pull: VecDeque<Mutation>,
}

/// Why a server message was refused. The state is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    #[error("message is for device {got}, but this is device {expected}")]
    WrongClient { expected: ClientId, got: ClientId },
    #[error("server acknowledged mutation {acknowledged}, but this device has issued only up to {issued}")]
    AckBeyondIssued {
        acknowledged: MutationId,
        issued: MutationId,
    },
}

impl ClientState {
    /// A fresh device: nothing issued, nothing pending.
    pub fn new(client_id: ClientId) -> Self {
        Self {
            client_id,
            last_issued: MutationId::NONE,
            last_acknowledged: MutationId::NONE,
            pending: VecDeque::new(),
            max_batch: DEFAULT_MAX_BATCH,
            cookie: None,
            confirmed: BTreeMap::new(),
            pulled_mutation_id: MutationId::NONE,
            awaiting_pull: VecDeque::new(),
        }
    }

    /// Sets how many mutations one push carries at most (at least one).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Queues a mutation made on the phone and returns its id, one more than the last.
    pub fn record(&mut self, name: impl Into<String>, args: serde_json::Value) -> MutationId {
        let id = self.last_issued.next();
        self.last_issued = id;
        self.pending.push_back(Mutation {
            id,
            name: name.into(),
            args,
        });
        id
    }

    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// The id of the newest mutation recorded (`MutationId::NONE` before the first).
    pub fn last_issued(&self) -> MutationId {
        self.last_issued
    }

    /// The highest id the server has acknowledged.
    pub fn last_acknowledged(&self) -> MutationId {
        self.last_acknowledged
    }

    /// Mutations waiting for the server's acknowledgement, oldest first.
    pub fn pending(&self) -> impl ExactSizeIterator<Item = &Mutation> + '_ {
        self.pending.iter()
    }
}

/// The push to send now: the oldest pending mutations (up to the batch size), or
/// `None` when the server has acknowledged everything.
pub fn generate_message(state: &mut ClientState) -> Option<PushMessage> {
    if state.pending.is_empty() {
        return None;
    }
    Some(PushMessage {
        client_id: state.client_id.clone(),
        mutations: state
            .pending
            .iter()
            .take(state.max_batch)
            .cloned()
            .collect(),
    })
}

/// Takes in a message from the server. Returns how many mutations it newly
/// acknowledged (0 for an old or duplicated acknowledgement).
pub fn receive_message(
    state: &mut ClientState,
    message: ServerMessage,
) -> Result<usize, ReceiveError> {
    match message {
        ServerMessage::Ack {
            client_id,
            last_mutation_id,
        } => {
            if client_id != state.client_id {
                return Err(ReceiveError::WrongClient {
                    expected: state.client_id.clone(),
                    got: client_id,
                });
            }
            if last_mutation_id > state.last_issued {
                return Err(ReceiveError::AckBeyondIssued {
                    acknowledged: last_mutation_id,
                    issued: state.last_issued,
                });
            }
            if last_mutation_id <= state.last_acknowledged {
                return Ok(0);
            }
            Ok(state.acknowledge(last_mutation_id))
        }
    }
}

impl ClientState {
    /// Drops pending mutations up to `last` (which must not be beyond
    /// `last_issued`); those not yet visible in a pull wait in `awaiting_pull`.
    /// Returns how many left the queue.
    pub(crate) fn acknowledge(&mut self, last: MutationId) -> usize {
        let before = self.pending.len();
        while self.pending.front().is_some_and(|m| m.id <= last) {
            let m = self.pending.pop_front().expect("front exists");
            if m.id > self.pulled_mutation_id {
                self.awaiting_pull.push_back(m);
            }
        }
        self.last_acknowledged = self.last_acknowledged.max(last);
        before - self.pending.len()
    }
}

/// The stored form of [`ClientState`], checked before it becomes one.
#[derive(Deserialize)]
struct StoredState {
    client_id: ClientId,
    last_issued: MutationId,
    last_acknowledged: MutationId,
    pending: VecDeque<Mutation>,
    max_batch: usize,
    // Absent in states stored before pull existed.
    #[serde(default)]
    cookie: Option<Cookie>,
    #[serde(default)]
    confirmed: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pulled_mutation_id: Option<MutationId>,
    #[serde(default)]
    awaiting_pull: VecDeque<Mutation>,
}

impl TryFrom<StoredState> for ClientState {
    type Error = String;

    fn try_from(s: StoredState) -> Result<Self, String> {
        if s.last_acknowledged > s.last_issued {
            return Err(format!(
                "acknowledged {} is beyond issued {}",
                s.last_acknowledged, s.last_issued
            ));
        }
        let expected = (s.last_acknowledged.0 + 1..=s.last_issued.0).map(MutationId);
        if !s.pending.iter().map(|m| m.id).eq(expected) {
            return Err(format!(
                "pending mutation ids must run from {} to {}",
                s.last_acknowledged.next(),
                s.last_issued
            ));
        }
        let pulled = s.pulled_mutation_id.unwrap_or(s.last_acknowledged);
        if pulled > s.last_acknowledged {
            return Err(format!(
                "pulled mutation {pulled} is beyond acknowledged {}",
                s.last_acknowledged
            ));
        }
        let awaiting = (pulled.0 + 1..=s.last_acknowledged.0).map(MutationId);
        if !s.awaiting_pull.is_empty() && !s.awaiting_pull.iter().map(|m| m.id).eq(awaiting) {
            return Err(format!(
                "mutations awaiting a pull must run from {} to {}",
                pulled.next(),
                s.last_acknowledged
            ));
        }
        Ok(Self {
            client_id: s.client_id,
            last_issued: s.last_issued,
            last_acknowledged: s.last_acknowledged,
            pending: s.pending,
            max_batch: s.max_batch.max(1),
            cookie: s.cookie,
            confirmed: s.confirmed,
            pulled_mutation_id: pulled,
            awaiting_pull: s.awaiting_pull,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn device() -> ClientState {
        ClientState::new(ClientId("phone-1".into()))
    }

    fn ack(n: u64) -> ServerMessage {
        ServerMessage::Ack {
            client_id: ClientId("phone-1".into()),
            last_mutation_id: MutationId(n),
        }
    }

    fn ids(state: &ClientState) -> Vec<u64> {
        state.pending().map(|m| m.id.0).collect()
    }

    #[test]
    fn mutation_ids_increase_by_one_from_one() {
        let mut s = device();
        let got: Vec<u64> = (0..5).map(|k| s.record("note", json!(k)).0).collect();
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert_eq!(s.last_issued(), MutationId(5));
    }

    #[test]
    fn ids_keep_increasing_after_the_queue_drains() {
        let mut s = device();
        s.record("note", json!(1));
        s.record("note", json!(2));
        assert_eq!(receive_message(&mut s, ack(2)), Ok(2));
        assert!(generate_message(&mut s).is_none());
        assert_eq!(s.record("note", json!(3)), MutationId(3));
    }

    #[test]
    fn push_carries_pending_mutations_in_order() {
        let mut s = device();
        assert!(generate_message(&mut s).is_none(), "nothing to push");
        s.record("job_status", json!({"status": "on_site"}));
        s.record("serial_returned", json!({"serial": "ZTE123"}));
        let push = generate_message(&mut s).unwrap();
        assert_eq!(push.client_id, ClientId("phone-1".into()));
        assert_eq!(
            push.mutations.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(push.mutations[1].name, "serial_returned");
        // Unanswered pushes are resent whole: nothing leaves the queue without an ack.
        assert_eq!(generate_message(&mut s).unwrap(), push);
    }

    #[test]
    fn a_push_is_at_most_one_batch() {
        let mut s = device().with_max_batch(2);
        for k in 0..5 {
            s.record("note", json!(k));
        }
        let push = generate_message(&mut s).unwrap();
        assert_eq!(
            push.mutations.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            [1, 2]
        );
        receive_message(&mut s, ack(2)).unwrap();
        let push = generate_message(&mut s).unwrap();
        assert_eq!(
            push.mutations.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            [3, 4]
        );
    }

    #[test]
    fn acknowledged_mutations_leave_the_queue() {
        let mut s = device();
        for k in 0..4 {
            s.record("note", json!(k));
        }
        assert_eq!(receive_message(&mut s, ack(3)), Ok(3));
        assert_eq!(ids(&s), [4]);
        assert_eq!(s.last_acknowledged(), MutationId(3));
        assert_eq!(receive_message(&mut s, ack(4)), Ok(1));
        assert!(ids(&s).is_empty());
    }

    #[test]
    fn a_duplicate_or_old_ack_is_harmless() {
        let mut s = device();
        for k in 0..4 {
            s.record("note", json!(k));
        }
        receive_message(&mut s, ack(2)).unwrap();
        let before = s.clone();
        assert_eq!(receive_message(&mut s, ack(2)), Ok(0), "duplicate");
        assert_eq!(receive_message(&mut s, ack(1)), Ok(0), "old, reordered");
        assert_eq!(
            receive_message(&mut s, ack(0)),
            Ok(0),
            "from before the first push"
        );
        assert_eq!(s, before);
    }

    #[test]
    fn refuses_an_ack_for_mutations_never_made() {
        let mut s = device();
        s.record("note", json!(1));
        let before = s.clone();
        assert_eq!(
            receive_message(&mut s, ack(2)),
            Err(ReceiveError::AckBeyondIssued {
                acknowledged: MutationId(2),
                issued: MutationId(1)
            })
        );
        assert_eq!(s, before);
    }

    #[test]
    fn refuses_an_ack_for_another_device() {
        let mut s = device();
        s.record("note", json!(1));
        let other = ServerMessage::Ack {
            client_id: ClientId("phone-2".into()),
            last_mutation_id: MutationId(1),
        };
        assert!(matches!(
            receive_message(&mut s, other),
            Err(ReceiveError::WrongClient { .. })
        ));
        assert_eq!(ids(&s), [1]);
    }

    #[test]
    fn stored_state_survives_a_restart() {
        let mut s = device();
        for k in 0..3 {
            s.record("note", json!(k));
        }
        receive_message(&mut s, ack(1)).unwrap();
        let stored = serde_json::to_string(&s).unwrap();
        let mut restored: ClientState = serde_json::from_str(&stored).unwrap();
        assert_eq!(restored, s);
        assert_eq!(restored.record("note", json!(3)), MutationId(4));
    }

    #[test]
    fn a_corrupt_stored_state_is_refused() {
        let mut s = device();
        s.record("note", json!(1));
        s.record("note", json!(2));
        let stored = serde_json::to_value(&s).unwrap();
        let mut gap = stored.clone();
        gap["pending"].as_array_mut().unwrap().remove(0);
        assert!(serde_json::from_value::<ClientState>(gap).is_err());
        let mut ahead = stored;
        ahead["last_acknowledged"] = json!(5);
        assert!(serde_json::from_value::<ClientState>(ahead).is_err());

        // Acknowledged, not yet pulled: kept for the optimistic view, checked too.
        receive_message(&mut s, ack(2)).unwrap();
        let stored = serde_json::to_value(&s).unwrap();
        assert_eq!(stored["awaiting_pull"].as_array().unwrap().len(), 2);
        assert!(serde_json::from_value::<ClientState>(stored.clone()).is_ok());
        let mut gap = stored.clone();
        gap["awaiting_pull"].as_array_mut().unwrap().remove(0);
        assert!(serde_json::from_value::<ClientState>(gap).is_err());
        let mut beyond = stored;
        beyond["pulled_mutation_id"] = json!(3);
        assert!(serde_json::from_value::<ClientState>(beyond).is_err());
    }
}
