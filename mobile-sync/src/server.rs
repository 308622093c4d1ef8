//! The server's side of the protocol as pure decisions, for the API server to call
//! inside its database transactions (and for [`crate::MemoryServer`]).
//!
//! Push, per device (see RELIABILITY.md, "Mobile sync"):
//! 1. [`check_device`]: the device must be registered to the logged-in technician.
//! 2. [`plan_push`]: which mutations are new (ids at or below the device's
//!    `last_mutation_id` were applied before and are skipped).
//! 3. For each new mutation, in order, one transaction: [`crate::Fact::parse`],
//!    then [`crate::merge::apply_fact`] on the job; on `Ok`, store the fact, on
//!    `Err(rejection)` store the rejection; either way set `last_mutation_id` to
//!    the mutation's id and bump the versions of the scopes that changed, in the
//!    same transaction. On a temporary failure (database busy) roll back and stop:
//!    nothing advances and the API answers 503; the phone resends.
//! 4. Answer [`crate::ServerMessage::Ack`] with the device's `last_mutation_id`.
//!
//! Pull: [`plan_pull`] says whether the cookie can be diffed from or whether the
//! phone gets `clear` + a full snapshot; [`pull_response`] signs the new cookie.
//! Read the scope version, the changes and `last_mutation_id` in one snapshot.

use crate::cookie::{Cookie, CookieClaims, CookieError, CookieKey};
use crate::ids::{Epoch, ScopeVersion, TechnicianId};
use crate::message::{ClientId, DecodeError, Mutation, MutationId, PushMessage};
use crate::pull::{PatchOp, PullRequest, PullResponse};

/// Why the server refuses a whole request. Map to HTTP at the edge:
/// `Decode` → 400 (426 for a version), device errors → 403, `MissingMutations`
/// → 409, `Temporary` → 503.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("device {client_id} is not registered; log in on it first")]
    DeviceNotRegistered { client_id: ClientId },
    #[error("device {client_id} belongs to technician {owner}, not to {login}; log out on it and register it again")]
    DeviceOfAnotherTechnician {
        client_id: ClientId,
        owner: TechnicianId,
        login: TechnicianId,
    },
    #[error("push starts at mutation {got}, but the server expects {expected}: mutations in between are missing")]
    MissingMutations {
        expected: MutationId,
        got: MutationId,
    },
    #[error("temporary server failure; nothing was lost, send again")]
    Temporary,
}

/// The device must belong to the technician who is logged in.
pub fn check_device(
    client_id: &ClientId,
    owner: Option<&TechnicianId>,
    login: &TechnicianId,
) -> Result<(), ServerError> {
    match owner {
        None => Err(ServerError::DeviceNotRegistered {
            client_id: client_id.clone(),
        }),
        Some(owner) if owner != login => Err(ServerError::DeviceOfAnotherTechnician {
            client_id: client_id.clone(),
            owner: owner.clone(),
            login: login.clone(),
        }),
        Some(_) => Ok(()),
    }
}

/// The mutations of `push` still to process, in order, given the device's
/// `last_mutation_id`. Already-applied ones are left out (a resend after a lost
/// answer); a gap after them is refused, because applying mutation n+2 without
/// n+1 would break "in order".
pub fn plan_push(
    last_mutation_id: MutationId,
    push: &PushMessage,
) -> Result<Vec<&Mutation>, ServerError> {
    let mut expected = last_mutation_id.next();
    let mut todo = Vec::new();
    for m in &push.mutations {
        if m.id < expected && todo.is_empty() {
            continue;
        }
        if m.id != expected {
            return Err(ServerError::MissingMutations {
                expected,
                got: m.id,
            });
        }
        todo.push(m);
        expected = expected.next();
    }
    Ok(todo)
}

/// Why a pull gets `clear` + a full snapshot instead of a diff.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    FirstSync,
    /// Forged, garbled, or signed with another key.
    BadCookie(CookieError),
    /// Made before the server's history was restored or rebuilt.
    OtherEpoch,
    /// Made for another technician's scope.
    OtherScope,
    /// Claims a version the scope has not reached (a restore without an epoch bump).
    FromTheFuture,
    /// Older than the oldest change the server still keeps deletions for.
    TooOld,
}

/// How to answer a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullPlan {
    /// Send every change in the scope with a version above this one.
    ChangesSince(ScopeVersion),
    /// Send `clear` and then every key in the scope.
    Reset(ResetReason),
}

/// The scope's state as read in the pull's snapshot.
#[derive(Clone, Debug)]
pub struct ScopeSnapshot<'a> {
    pub key: &'a CookieKey,
    pub epoch: Epoch,
    pub technician: &'a TechnicianId,
    pub version: ScopeVersion,
    /// Deletions older than this were forgotten, so diffs must start at or after it.
    pub oldest_diffable: ScopeVersion,
}

/// Decides whether `cookie` can be diffed from. Never an error: anything the
/// server cannot use gets a reset, so the phone recovers in one round trip.
pub fn plan_pull(cookie: Option<&Cookie>, scope: &ScopeSnapshot<'_>) -> PullPlan {
    let Some(cookie) = cookie else {
        return PullPlan::Reset(ResetReason::FirstSync);
    };
    let claims = match cookie.verify(scope.key) {
        Ok(claims) => claims,
        Err(e) => return PullPlan::Reset(ResetReason::BadCookie(e)),
    };
    if claims.epoch != scope.epoch {
        PullPlan::Reset(ResetReason::OtherEpoch)
    } else if &claims.technician != scope.technician {
        PullPlan::Reset(ResetReason::OtherScope)
    } else if claims.version > scope.version {
        PullPlan::Reset(ResetReason::FromTheFuture)
    } else if claims.version < scope.oldest_diffable {
        PullPlan::Reset(ResetReason::TooOld)
    } else {
        PullPlan::ChangesSince(claims.version)
    }
}

/// The answer to `request`: `patch` (starting with [`PatchOp::Clear`] for a reset)
/// and a freshly signed cookie for the scope's version.
pub fn pull_response(
    request: &PullRequest,
    scope: &ScopeSnapshot<'_>,
    last_mutation_id: MutationId,
    patch: Vec<PatchOp>,
) -> PullResponse {
    PullResponse {
        client_id: request.client_id.clone(),
        base_cookie: request.cookie.clone(),
        cookie: Cookie::issue(
            scope.key,
            &CookieClaims {
                epoch: scope.epoch,
                technician: scope.technician.clone(),
                version: scope.version,
            },
        ),
        last_mutation_id,
        patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(ids: &[u64]) -> PushMessage {
        PushMessage {
            client_id: ClientId("p".into()),
            mutations: ids
                .iter()
                .map(|&id| Mutation {
                    id: MutationId(id),
                    name: "note".into(),
                    args: json!({}),
                })
                .collect(),
        }
    }

    fn ids(todo: Vec<&Mutation>) -> Vec<u64> {
        todo.into_iter().map(|m| m.id.0).collect()
    }

    #[test]
    fn a_push_skips_what_was_applied_and_keeps_the_rest_in_order() {
        assert_eq!(
            ids(plan_push(MutationId(0), &push(&[1, 2, 3])).unwrap()),
            [1, 2, 3]
        );
        assert_eq!(
            ids(plan_push(MutationId(2), &push(&[1, 2, 3, 4])).unwrap()),
            [3, 4]
        );
        assert!(plan_push(MutationId(4), &push(&[1, 2, 3, 4]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_push_with_a_gap_is_refused() {
        assert!(matches!(
            plan_push(MutationId(2), &push(&[4, 5])),
            Err(ServerError::MissingMutations {
                expected: MutationId(3),
                got: MutationId(4)
            })
        ));
        assert!(matches!(
            plan_push(MutationId(0), &push(&[1, 3])),
            Err(ServerError::MissingMutations { .. })
        ));
        assert!(matches!(
            plan_push(MutationId(0), &push(&[1, 1])),
            Err(ServerError::MissingMutations { .. })
        ));
    }

    #[test]
    fn only_the_owner_may_use_a_device() {
        let (ana, bo) = (TechnicianId::from("ana"), TechnicianId::from("bo"));
        let phone = ClientId("p".into());
        assert!(check_device(&phone, Some(&ana), &ana).is_ok());
        let err = check_device(&phone, Some(&ana), &bo).unwrap_err();
        assert!(
            err.to_string()
                .contains("belongs to technician ana, not to bo"),
            "{err}"
        );
        assert!(matches!(
            check_device(&phone, None, &bo),
            Err(ServerError::DeviceNotRegistered { .. })
        ));
    }

    #[test]
    fn every_unusable_cookie_gets_a_reset() {
        let key = CookieKey::new(b"k".to_vec());
        let ana = TechnicianId::from("ana");
        let scope = ScopeSnapshot {
            key: &key,
            epoch: Epoch(2),
            technician: &ana,
            version: ScopeVersion(10),
            oldest_diffable: ScopeVersion(3),
        };
        let cookie = |epoch, technician: &str, version| {
            Cookie::issue(
                &key,
                &CookieClaims {
                    epoch: Epoch(epoch),
                    technician: technician.into(),
                    version: ScopeVersion(version),
                },
            )
        };
        assert_eq!(
            plan_pull(Some(&cookie(2, "ana", 7)), &scope),
            PullPlan::ChangesSince(ScopeVersion(7))
        );
        assert_eq!(
            plan_pull(Some(&cookie(2, "ana", 10)), &scope),
            PullPlan::ChangesSince(ScopeVersion(10))
        );
        let resets = [
            (None, ResetReason::FirstSync),
            (
                Some(Cookie::from_text("garbage")),
                ResetReason::BadCookie(CookieError::Malformed),
            ),
            (
                Some(Cookie::issue(
                    &CookieKey::new(b"other".to_vec()),
                    &CookieClaims {
                        epoch: Epoch(2),
                        technician: ana.clone(),
                        version: ScopeVersion(7),
                    },
                )),
                ResetReason::BadCookie(CookieError::BadSignature),
            ),
            (Some(cookie(1, "ana", 7)), ResetReason::OtherEpoch),
            (Some(cookie(2, "bo", 7)), ResetReason::OtherScope),
            (Some(cookie(2, "ana", 11)), ResetReason::FromTheFuture),
            (Some(cookie(2, "ana", 2)), ResetReason::TooOld),
        ];
        for (cookie, reason) in resets {
            assert_eq!(
                plan_pull(cookie.as_ref(), &scope),
                PullPlan::Reset(reason.clone()),
                "{reason:?}"
            );
        }
    }
}
