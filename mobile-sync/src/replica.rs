//! The phone's side of pull: its copy of the technician's scope (key → JSON), the
//! cookie it was read at, and the optimistic view on top.
//!
//! Rules, so late, duplicated and reordered answers are harmless:
//! - an answer is applied only if it answers the cookie the phone holds now
//!   (`base_cookie`); an answer to an older request is ignored;
//! - a diff whose cookie is older than the one held is ignored, so the cursor
//!   never goes backwards;
//! - a reset (`clear` + snapshot) answering the held cookie is applied even if its
//!   version is lower: the server said it cannot use our cookie, and refusing its
//!   snapshot would loop forever;
//! - the pull's `last_mutation_id` also acknowledges pushed mutations.
//!
//! Persist [`ClientState`] after each applied answer, like after a push.

use crate::client::{ClientState, ReceiveError};
use crate::cookie::Cookie;
use crate::fact::{Fact, FactKind};
use crate::ids::JobId;
use crate::job::job_key;
use crate::message::{Mutation, MutationId};
use crate::pull::{PatchOp, PullRequest, PullResponse};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What [`receive_pull`] did with an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullOutcome {
    /// The view moved to the answer's cookie.
    Applied { reset: bool, operations: usize },
    /// An answer to a request made with another cookie (late or duplicated).
    IgnoredOtherBase,
    /// A diff to an older cursor than the one held.
    IgnoredOlderCookie,
}

/// The pull to send now (pull whenever woken up, after a push is acknowledged,
/// or when an answer is overdue; pulling is read-only and may be repeated).
pub fn generate_pull(state: &ClientState) -> PullRequest {
    PullRequest {
        client_id: state.client_id.clone(),
        cookie: state.cookie.clone(),
    }
}

/// Takes in the server's answer to a pull.
pub fn receive_pull(
    state: &mut ClientState,
    response: PullResponse,
) -> Result<PullOutcome, ReceiveError> {
    if response.client_id != state.client_id {
        return Err(ReceiveError::WrongClient {
            expected: state.client_id.clone(),
            got: response.client_id,
        });
    }
    if response.last_mutation_id > state.last_issued {
        return Err(ReceiveError::AckBeyondIssued {
            acknowledged: response.last_mutation_id,
            issued: state.last_issued,
        });
    }
    if response.base_cookie != state.cookie {
        return Ok(PullOutcome::IgnoredOtherBase);
    }
    let reset = response.is_reset();
    if !reset && is_older(&response.cookie, state.cookie.as_ref()) {
        return Ok(PullOutcome::IgnoredOlderCookie);
    }
    for op in &response.patch {
        match op {
            PatchOp::Clear => state.confirmed.clear(),
            PatchOp::Put { key, value } => {
                state.confirmed.insert(key.clone(), value.clone());
            }
            PatchOp::Del { key } => {
                state.confirmed.remove(key);
            }
        }
    }
    state.cookie = Some(response.cookie);
    let lmid = response.last_mutation_id;
    if lmid > state.pulled_mutation_id {
        state.acknowledge(lmid);
        state.pulled_mutation_id = lmid;
        while state.awaiting_pull.front().is_some_and(|m| m.id <= lmid) {
            state.awaiting_pull.pop_front();
        }
    }
    Ok(PullOutcome::Applied {
        reset,
        operations: response.patch.len(),
    })
}

fn is_older(new: &Cookie, held: Option<&Cookie>) -> bool {
    match (new.order(), held.and_then(Cookie::order)) {
        (Some(new), Some(held)) => new < held,
        _ => false,
    }
}

impl ClientState {
    /// The cookie of the confirmed view (`None` before the first pull).
    pub fn cookie(&self) -> Option<&Cookie> {
        self.cookie.as_ref()
    }

    /// The scope as the server last sent it.
    pub fn confirmed(&self) -> &BTreeMap<String, Value> {
        &self.confirmed
    }

    /// The device's `last_mutation_id` as of the confirmed view.
    pub fn pulled_mutation_id(&self) -> MutationId {
        self.pulled_mutation_id
    }

    /// What the technician sees: the confirmed view with the effects of the
    /// mutations it does not show yet replayed on top (rebased on every pull).
    /// A status event moves the job's `status`; every fact is listed under the
    /// job's `pending_facts` until the server's view includes it.
    pub fn view(&self) -> BTreeMap<String, Value> {
        let mut view = self.confirmed.clone();
        for m in self.awaiting_pull.iter().chain(self.pending.iter()) {
            apply_optimistically(&mut view, m);
        }
        view
    }

    /// One key of [`ClientState::view`], without copying the rest of the view.
    pub fn view_of(&self, key: &str) -> Option<Value> {
        let mut one = BTreeMap::from([(key.to_owned(), self.confirmed.get(key)?.clone())]);
        let job = key.strip_prefix("job/");
        for m in self.awaiting_pull.iter().chain(self.pending.iter()) {
            if job.is_some() && m.args.get("job").and_then(Value::as_str) == job {
                apply_optimistically(&mut one, m);
            }
        }
        one.remove(key)
    }
}

/// A mutation's likely effect, for display only; the server decides. A mutation
/// the server will reject (unparsable, or about a job not in view) shows nothing.
fn apply_optimistically(view: &mut BTreeMap<String, Value>, m: &Mutation) {
    // Why look before parsing: most pending mutations are about other jobs.
    let job = m
        .args
        .get("job")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !view.contains_key(&job_key(&JobId::from(job))) {
        return;
    }
    let Ok(fact) = Fact::parse(m) else { return };
    let Some(job) = view.get_mut(&job_key(&fact.job)) else {
        return;
    };
    if let FactKind::Status { status, reason } = fact.kind {
        job["status"] = json!(status);
        job["failure_reason"] = json!(reason);
    }
    let fact = serde_json::to_value(&fact).expect("facts serialise");
    match job.get_mut("pending_facts").and_then(Value::as_array_mut) {
        Some(list) => list.push(fact),
        None => job["pending_facts"] = json!([fact]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie::{CookieClaims, CookieKey};
    use crate::ids::{Epoch, ScopeVersion};
    use crate::message::{ClientId, ServerMessage};
    use crate::receive_message;

    fn cookie(version: u64) -> Cookie {
        Cookie::issue(
            &CookieKey::new(b"k".to_vec()),
            &CookieClaims {
                epoch: Epoch(1),
                technician: "ana".into(),
                version: ScopeVersion(version),
            },
        )
    }

    fn phone() -> ClientState {
        ClientState::new(ClientId("p".into()))
    }

    fn answer(base: Option<u64>, new: u64, lmid: u64, patch: Vec<PatchOp>) -> PullResponse {
        PullResponse {
            client_id: ClientId("p".into()),
            base_cookie: base.map(cookie),
            cookie: cookie(new),
            last_mutation_id: MutationId(lmid),
            patch,
        }
    }

    fn put(key: &str, value: Value) -> PatchOp {
        PatchOp::Put {
            key: key.into(),
            value,
        }
    }

    #[test]
    fn patches_build_the_view_and_move_the_cookie() {
        let mut s = phone();
        assert_eq!(generate_pull(&s).cookie, None);
        let first = answer(
            None,
            3,
            0,
            vec![
                PatchOp::Clear,
                put("job/J-1", json!({"status": "assigned"})),
                put("job/J-2", json!({"status": "assigned"})),
            ],
        );
        assert_eq!(
            receive_pull(&mut s, first),
            Ok(PullOutcome::Applied {
                reset: true,
                operations: 3
            })
        );
        assert_eq!(generate_pull(&s).cookie, Some(cookie(3)));
        let diff = answer(
            Some(3),
            5,
            0,
            vec![
                put("job/J-1", json!({"status": "arrived"})),
                PatchOp::Del {
                    key: "job/J-2".into(),
                },
            ],
        );
        receive_pull(&mut s, diff).unwrap();
        assert_eq!(
            s.confirmed().clone(),
            BTreeMap::from([("job/J-1".to_owned(), json!({"status": "arrived"}))])
        );
    }

    #[test]
    fn late_and_duplicated_answers_never_move_the_cursor_back() {
        let mut s = phone();
        let first = answer(None, 3, 0, vec![PatchOp::Clear]);
        receive_pull(&mut s, first.clone()).unwrap();
        let second = answer(Some(3), 5, 0, vec![put("a", json!(1))]);
        receive_pull(&mut s, second.clone()).unwrap();
        let before = s.clone();
        assert_eq!(
            receive_pull(&mut s, first),
            Ok(PullOutcome::IgnoredOtherBase)
        );
        assert_eq!(
            receive_pull(&mut s, second),
            Ok(PullOutcome::IgnoredOtherBase)
        );
        // A diff claiming to answer our cookie with an older one (a confused server).
        assert_eq!(
            receive_pull(&mut s, answer(Some(5), 4, 0, vec![put("a", json!(0))])),
            Ok(PullOutcome::IgnoredOlderCookie)
        );
        assert_eq!(s, before);
    }

    #[test]
    fn a_reset_answering_our_cookie_wins_even_with_a_lower_version() {
        let mut s = phone();
        s.cookie = Some(Cookie::from_text("c1.1.999.616e61.00"));
        s.confirmed.insert("job/ghost".into(), json!({}));
        let reset = answer(None, 4, 0, vec![PatchOp::Clear, put("job/J-1", json!({}))]);
        let reset = PullResponse {
            base_cookie: s.cookie.clone(),
            ..reset
        };
        assert!(matches!(
            receive_pull(&mut s, reset),
            Ok(PullOutcome::Applied { reset: true, .. })
        ));
        assert_eq!(s.confirmed().keys().collect::<Vec<_>>(), ["job/J-1"]);
        assert_eq!(s.cookie(), Some(&cookie(4)));
    }

    #[test]
    fn a_pull_acknowledges_pushed_mutations() {
        let mut s = phone();
        s.record("note", json!({}));
        s.record("note", json!({}));
        receive_pull(&mut s, answer(None, 1, 1, vec![PatchOp::Clear])).unwrap();
        assert_eq!(s.last_acknowledged(), MutationId(1));
        assert_eq!(s.pending().map(|m| m.id.0).collect::<Vec<_>>(), [2]);
        assert_eq!(
            receive_pull(&mut s, answer(Some(1), 1, 3, vec![])),
            Err(ReceiveError::AckBeyondIssued {
                acknowledged: MutationId(3),
                issued: MutationId(2)
            })
        );
    }

    #[test]
    fn the_view_shows_unconfirmed_mutations_until_a_pull_includes_them() {
        let mut s = phone();
        receive_pull(
            &mut s,
            answer(
                None,
                1,
                0,
                vec![
                    PatchOp::Clear,
                    put("job/J-1", json!({"status": "assigned"})),
                ],
            ),
        )
        .unwrap();
        s.record(
            "job_status",
            json!({"fact_id": "f1", "job": "J-1", "at": 0, "status": "en_route"}),
        );
        s.record(
            "note",
            json!({"fact_id": "f2", "job": "J-9", "at": 0, "text": "not in view"}),
        );
        assert_eq!(s.view()["job/J-1"]["status"], "en_route");
        assert_eq!(s.view()["job/J-1"]["pending_facts"][0]["id"], "f1");
        assert_eq!(s.view_of("job/J-1"), Some(s.view()["job/J-1"].clone()));
        assert_eq!(s.view_of("job/J-9"), None);
        assert_eq!(s.view().len(), 1);

        // Acknowledged by push, but no pull yet: still shown.
        receive_message(
            &mut s,
            ServerMessage::Ack {
                client_id: ClientId("p".into()),
                last_mutation_id: MutationId(2),
            },
        )
        .unwrap();
        assert_eq!(s.pending().len(), 0);
        assert_eq!(s.view()["job/J-1"]["status"], "en_route");

        // The pull includes it: the server's view is all that is left.
        receive_pull(
            &mut s,
            answer(
                Some(1),
                2,
                2,
                vec![put(
                    "job/J-1",
                    json!({"status": "en_route", "facts": ["f1"]}),
                )],
            ),
        )
        .unwrap();
        assert_eq!(s.view(), s.confirmed().clone());
        assert_eq!(s.view()["job/J-1"].get("pending_facts"), None);

        // Survives a restart with everything in between.
        let stored = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ClientState>(&stored).unwrap(), s);
    }

    #[test]
    fn a_state_stored_before_pull_existed_still_loads() {
        let old = json!({"client_id": "p", "last_issued": 3, "last_acknowledged": 2,
            "pending": [{"id": 3, "name": "note", "args": {}}], "max_batch": 100});
        let s: ClientState = serde_json::from_value(old).unwrap();
        assert_eq!(s.pulled_mutation_id(), MutationId(2));
        assert_eq!(s.cookie(), None);
    }

    #[test]
    fn answers_for_another_device_are_refused() {
        let mut s = phone();
        let mut other = answer(None, 1, 0, vec![PatchOp::Clear]);
        other.client_id = ClientId("q".into());
        assert!(matches!(
            receive_pull(&mut s, other),
            Err(ReceiveError::WrongClient { .. })
        ));
    }
}
