//! Technician facts: what the phone's mutations mean, parsed and validated once at
//! the edge ([`Fact::parse`]), so merge rules and storage never check again.
//!
//! Every fact is append-only and carries an id made on the phone, the job it is
//! about and the phone's clock reading (`at`, kept but never trusted for order).
//!
//! | mutation name           | arguments besides `fact_id`, `job`, `at`                        |
//! |-------------------------|-----------------------------------------------------------------|
//! | `job_status`            | `status` (`en_route` … `failed`), `reason` iff `failed`          |
//! | `note`                  | `text`                                                          |
//! | `photo`                 | `sha256` (content hash), `bytes`, `media_type` (`image/…`)      |
//! | `upsell_outcome`        | `offer_id` instead of `fact_id`, `product_code`, `price_cents`, `billing`, `outcome` |
//! | `equipment`             | `serial`, `action` (`installed` / `collected`)                 |
//! | `customer_confirmation` | `signer_name`, optional `signature_sha256`                      |

use crate::ids::{Cents, FactId, JobId, Timestamp};
use crate::message::Mutation;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

const MAX_ID: usize = 100;
const MAX_NOTE: usize = 4_000;
const MAX_CODE: usize = 64;
const MAX_PHOTO_BYTES: u64 = 50 * 1024 * 1024;
const MAX_PRICE: Cents = Cents(100_000_000);

/// A step of a job's life, in order. `assigned` is the dispatcher's doing; the
/// technician reports the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Assigned,
    EnRoute,
    Arrived,
    InProgress,
    Completed,
    Failed,
}

impl JobStatus {
    /// Position in the chain; `completed` and `failed` share the last place.
    pub fn rank(self) -> u8 {
        match self {
            Self::Assigned => 0,
            Self::EnRoute => 1,
            Self::Arrived => 2,
            Self::InProgress => 3,
            Self::Completed | Self::Failed => 4,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 4
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).expect("a unit variant serialises");
        f.write_str(s.as_str().unwrap_or("?"))
    }
}

/// Why a visit failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    CustomerAbsent,
    NoAccess,
    NeedsEscalation,
    WrongEquipment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Billing {
    OneOff,
    Monthly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferOutcome {
    Accepted,
    Declined,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EquipmentAction {
    Installed,
    Collected,
}

/// One thing a technician recorded about a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub id: FactId,
    pub job: JobId,
    /// The phone's clock when recorded; may be wrong by a day.
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: FactKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FactKind {
    Status {
        status: JobStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<FailureReason>,
    },
    Note {
        text: String,
    },
    Photo {
        sha256: String,
        bytes: u64,
        media_type: String,
    },
    Upsell {
        product_code: String,
        price: Cents,
        billing: Billing,
        outcome: OfferOutcome,
    },
    Equipment {
        /// Trimmed and upper-cased, so `zte-0042 ` and `ZTE-0042` are one serial.
        serial: String,
        action: EquipmentAction,
    },
    CustomerConfirmation {
        signer_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature_sha256: Option<String>,
    },
}

/// Why the server refused a mutation for good. The device's queue moves on past
/// it; the rejection is shown to the technician through their scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rejection {
    #[error("unknown mutation {name:?}")]
    UnknownMutation { name: String },
    #[error("invalid arguments: {detail}")]
    InvalidArgs { detail: String },
    #[error("job {job} does not exist")]
    UnknownJob { job: JobId },
    #[error("job {job} was never assigned to this technician")]
    NotYourJob { job: JobId },
    #[error("status {to} cannot follow {from} on job {job}")]
    StatusOutOfOrder {
        job: JobId,
        from: JobStatus,
        to: JobStatus,
    },
    #[error("fact id {fact} was already used for something else")]
    FactIdReused { fact: FactId },
}

impl Rejection {
    fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidArgs {
            detail: detail.into(),
        }
    }
}

#[derive(Deserialize)]
struct Common {
    #[serde(alias = "offer_id")]
    fact_id: FactId,
    job: JobId,
    at: Timestamp,
}

#[derive(Deserialize)]
struct StatusArgs {
    status: JobStatus,
    #[serde(default)]
    reason: Option<FailureReason>,
}

#[derive(Deserialize)]
struct NoteArgs {
    text: String,
}

#[derive(Deserialize)]
struct PhotoArgs {
    sha256: String,
    bytes: u64,
    media_type: String,
}

#[derive(Deserialize)]
struct UpsellArgs {
    product_code: String,
    price_cents: Cents,
    billing: Billing,
    outcome: OfferOutcome,
}

#[derive(Deserialize)]
struct EquipmentArgs {
    serial: String,
    action: EquipmentAction,
}

#[derive(Deserialize)]
struct ConfirmationArgs {
    signer_name: String,
    #[serde(default)]
    signature_sha256: Option<String>,
}

fn args<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, Rejection> {
    T::deserialize(value).map_err(|e| Rejection::invalid(e.to_string()))
}

fn short_text(field: &str, value: &str, max: usize) -> Result<String, Rejection> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Rejection::invalid(format!("{field} is empty")));
    }
    if value.chars().count() > max {
        return Err(Rejection::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    Ok(value.to_owned())
}

fn sha256_hex(field: &str, value: &str) -> Result<String, Rejection> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(Rejection::invalid(format!(
            "{field} must be 64 hexadecimal digits"
        )))
    }
}

impl Fact {
    /// Reads a phone's mutation as a fact, or says why it can never be one.
    pub fn parse(mutation: &Mutation) -> Result<Self, Rejection> {
        let a = &mutation.args;
        let common: Common = args(a)?;
        let id = FactId(short_text("fact_id", &common.fact_id.0, MAX_ID)?);
        let job = JobId(short_text("job", &common.job.0, MAX_ID)?);
        let kind = match mutation.name.as_str() {
            "job_status" => {
                let s: StatusArgs = args(a)?;
                match (s.status, s.reason) {
                    (JobStatus::Assigned, _) => {
                        return Err(Rejection::invalid("only the dispatcher assigns a job"))
                    }
                    (JobStatus::Failed, None) => {
                        return Err(Rejection::invalid("a failed visit needs a reason"))
                    }
                    (JobStatus::Failed, reason) => FactKind::Status {
                        status: JobStatus::Failed,
                        reason,
                    },
                    (_, Some(_)) => {
                        return Err(Rejection::invalid(
                            "a reason is given only for a failed visit",
                        ))
                    }
                    (status, None) => FactKind::Status {
                        status,
                        reason: None,
                    },
                }
            }
            "note" => {
                let n: NoteArgs = args(a)?;
                FactKind::Note {
                    text: short_text("text", &n.text, MAX_NOTE)?,
                }
            }
            "photo" => {
                let p: PhotoArgs = args(a)?;
                if p.bytes == 0 || p.bytes > MAX_PHOTO_BYTES {
                    return Err(Rejection::invalid(format!(
                        "photo size must be 1..={MAX_PHOTO_BYTES} bytes"
                    )));
                }
                if !p.media_type.starts_with("image/") {
                    return Err(Rejection::invalid("media_type must be image/…"));
                }
                FactKind::Photo {
                    sha256: sha256_hex("sha256", &p.sha256)?,
                    bytes: p.bytes,
                    media_type: short_text("media_type", &p.media_type, MAX_CODE)?,
                }
            }
            "upsell_outcome" => {
                let u: UpsellArgs = args(a)?;
                if u.price_cents < Cents(0) || u.price_cents > MAX_PRICE {
                    return Err(Rejection::invalid(format!(
                        "price_cents must be 0..={}",
                        MAX_PRICE.0
                    )));
                }
                FactKind::Upsell {
                    product_code: short_text("product_code", &u.product_code, MAX_CODE)?,
                    price: u.price_cents,
                    billing: u.billing,
                    outcome: u.outcome,
                }
            }
            "equipment" => {
                let e: EquipmentArgs = args(a)?;
                FactKind::Equipment {
                    serial: short_text("serial", &e.serial, MAX_CODE)?.to_uppercase(),
                    action: e.action,
                }
            }
            "customer_confirmation" => {
                let c: ConfirmationArgs = args(a)?;
                FactKind::CustomerConfirmation {
                    signer_name: short_text("signer_name", &c.signer_name, MAX_CODE)?,
                    signature_sha256: c
                        .signature_sha256
                        .map(|s| sha256_hex("signature_sha256", &s))
                        .transpose()?,
                }
            }
            other => {
                return Err(Rejection::UnknownMutation {
                    name: other.to_owned(),
                })
            }
        };
        Ok(Self {
            id,
            job,
            at: common.at,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MutationId;
    use serde_json::{json, Value};

    fn mutation(name: &str, args: Value) -> Mutation {
        Mutation {
            id: MutationId(1),
            name: name.into(),
            args,
        }
    }

    fn base(extra: Value) -> Value {
        let mut v = json!({"fact_id": "f-1", "job": "J-1", "at": 1_700_000_000_000_i64});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn parses_each_kind_of_fact() {
        let cases = [
            ("job_status", json!({"status": "en_route"})),
            (
                "job_status",
                json!({"status": "failed", "reason": "customer_absent"}),
            ),
            ("note", json!({"text": "dog in the garden"})),
            (
                "photo",
                json!({"sha256": "AB".repeat(32), "bytes": 2048, "media_type": "image/jpeg"}),
            ),
            (
                "equipment",
                json!({"serial": " zte-0042 ", "action": "installed"}),
            ),
            (
                "customer_confirmation",
                json!({"signer_name": "M. Pérez", "signature_sha256": "0".repeat(64)}),
            ),
        ];
        for (name, extra) in cases {
            let fact = Fact::parse(&mutation(name, base(extra))).unwrap();
            assert_eq!(fact.id, FactId("f-1".into()));
            assert_eq!(fact.job, JobId("J-1".into()));
        }
        let upsell = json!({"offer_id": "offer-9", "job": "J-1", "at": 5, "product_code": "MESH-2",
            "price_cents": 1500, "billing": "monthly", "outcome": "accepted"});
        let fact = Fact::parse(&mutation("upsell_outcome", upsell)).unwrap();
        assert_eq!(fact.id, FactId("offer-9".into()));
        assert_eq!(
            fact.kind,
            FactKind::Upsell {
                product_code: "MESH-2".into(),
                price: Cents(1500),
                billing: Billing::Monthly,
                outcome: OfferOutcome::Accepted
            }
        );
        let serial = Fact::parse(&mutation(
            "equipment",
            base(json!({"serial": " zte-0042 ", "action": "collected"})),
        ))
        .unwrap();
        assert!(
            matches!(serial.kind, FactKind::Equipment { ref serial, .. } if serial == "ZTE-0042")
        );
    }

    #[test]
    fn refuses_what_can_never_be_a_fact() {
        let cases = [
            ("job_status", json!({"status": "assigned"})),
            ("job_status", json!({"status": "failed"})),
            (
                "job_status",
                json!({"status": "arrived", "reason": "no_access"}),
            ),
            ("job_status", json!({"status": "failed", "reason": "bored"})),
            ("job_status", json!({"status": "on_site"})),
            ("note", json!({"text": "   "})),
            ("note", json!({"text": "x".repeat(4_001)})),
            (
                "photo",
                json!({"sha256": "abc", "bytes": 1, "media_type": "image/png"}),
            ),
            (
                "photo",
                json!({"sha256": "a".repeat(64), "bytes": 0, "media_type": "image/png"}),
            ),
            (
                "photo",
                json!({"sha256": "a".repeat(64), "bytes": 10, "media_type": "application/pdf"}),
            ),
            (
                "upsell_outcome",
                json!({"product_code": "X", "price_cents": -1, "billing": "one_off", "outcome": "declined"}),
            ),
            (
                "upsell_outcome",
                json!({"product_code": "X", "price_cents": 1, "billing": "weekly", "outcome": "declined"}),
            ),
            ("equipment", json!({"serial": "", "action": "installed"})),
            ("equipment", json!({"serial": "S1", "action": "sold"})),
            ("customer_confirmation", json!({"signer_name": ""})),
        ];
        for (name, extra) in cases {
            let got = Fact::parse(&mutation(name, base(extra.clone())));
            assert!(
                matches!(got, Err(Rejection::InvalidArgs { .. })),
                "{name} {extra}: {got:?}"
            );
        }
        assert!(matches!(
            Fact::parse(&mutation(
                "note",
                json!({"job": "J-1", "at": 1, "text": "x"})
            )),
            Err(Rejection::InvalidArgs { .. })
        ));
        assert!(matches!(
            Fact::parse(&mutation("note", json!(null))),
            Err(Rejection::InvalidArgs { .. })
        ));
        assert_eq!(
            Fact::parse(&mutation("teleport", base(json!({})))),
            Err(Rejection::UnknownMutation {
                name: "teleport".into()
            })
        );
    }

    #[test]
    fn statuses_follow_the_chain() {
        use JobStatus::*;
        let chain = [Assigned, EnRoute, Arrived, InProgress, Completed];
        assert!(chain.windows(2).all(|w| w[0].rank() < w[1].rank()));
        assert_eq!(Completed.rank(), Failed.rank());
        assert!(Failed.is_final() && !InProgress.is_final());
        assert_eq!(EnRoute.to_string(), "en_route");
    }

    #[test]
    fn a_fact_round_trips_through_json() {
        let fact = Fact::parse(&mutation(
            "job_status",
            base(json!({"status": "failed", "reason": "wrong_equipment"})),
        ))
        .unwrap();
        let value = serde_json::to_value(&fact).unwrap();
        assert_eq!(value["kind"], "status");
        assert_eq!(value["reason"], "wrong_equipment");
        assert_eq!(serde_json::from_value::<Fact>(value).unwrap(), fact);
    }
}
