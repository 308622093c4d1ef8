//! The conflict table of `merge.rs`, end to end through the reference server:
//! what happens when the dispatcher and an offline technician changed the same job.

use despacho_mobile_sync::{
    generate_message, generate_pull, receive_message, receive_pull, ClientId, ClientState,
    CookieKey, DispatchChange, DispatchFields, Epoch, FactKind, Flag, JobId, JobStatus,
    MemoryServer, MutationId, MutationOutcome, Rejection, TechnicianId, TimeWindow, Timestamp,
};
use serde_json::{json, Value};

const NOON: Timestamp = Timestamp(1_800_000_000_000);
const DAY: i64 = 24 * Timestamp::HOUR;

struct World {
    server: MemoryServer,
    ana: ClientState,
    bo: ClientState,
}

fn ana() -> TechnicianId {
    TechnicianId::from("ana")
}

fn bo() -> TechnicianId {
    TechnicianId::from("bo")
}

fn job() -> JobId {
    JobId::from("J-1")
}

impl World {
    /// J-1 is ana's, J-2 is bo's; both phones have pulled.
    fn new() -> Self {
        let mut server = MemoryServer::new(CookieKey::new(b"secret".to_vec()), Epoch(1));
        server.set_now(NOON);
        for (id, technician) in [("J-1", ana()), ("J-2", bo())] {
            let fields = DispatchFields {
                technician: Some(technician),
                window: TimeWindow::new(NOON, NOON.plus_millis(2 * Timestamp::HOUR)).unwrap(),
                address: format!("{id} street"),
                cancelled: false,
            };
            server.create_job(JobId::from(id), fields).unwrap();
        }
        let mut world = Self {
            server,
            ana: ClientState::new(ClientId("ana-phone".into())),
            bo: ClientState::new(ClientId("bo-phone".into())),
        };
        for who in [ana(), bo()] {
            let id = world.phone(&who).client_id().clone();
            world.server.register_device(&who, &id).unwrap();
            world.sync(&who);
        }
        world
    }

    fn phone(&mut self, who: &TechnicianId) -> &mut ClientState {
        if who == &ana() {
            &mut self.ana
        } else {
            &mut self.bo
        }
    }

    /// Pushes everything pending, then pulls (a phone back online).
    fn sync(&mut self, who: &TechnicianId) {
        let phone = if who == &ana() {
            &mut self.ana
        } else {
            &mut self.bo
        };
        while let Some(push) = generate_message(phone) {
            let ack = self.server.push(who, &push).unwrap();
            receive_message(phone, ack).unwrap();
        }
        let answer = self.server.pull(who, &generate_pull(phone)).unwrap();
        receive_pull(phone, answer).unwrap();
        assert_eq!(phone.confirmed(), &self.server.scope_view(who));
    }

    fn record(&mut self, who: &TechnicianId, name: &str, fact: &str, args: Value) -> MutationId {
        self.record_at(who, name, fact, NOON, args)
    }

    fn record_at(
        &mut self,
        who: &TechnicianId,
        name: &str,
        fact: &str,
        at: Timestamp,
        args: Value,
    ) -> MutationId {
        let mut full = json!({"fact_id": fact, "job": "J-1", "at": at});
        full.as_object_mut()
            .unwrap()
            .extend(args.as_object().unwrap().clone());
        self.phone(who).record(name, full)
    }

    fn status(&mut self, who: &TechnicianId, fact: &str, status: &str) -> MutationId {
        self.record(who, "job_status", fact, json!({"status": status}))
    }

    fn flags(&self, id: &JobId) -> Vec<Flag> {
        self.server.job(id).unwrap().flags().to_vec()
    }

    fn fact_ids(&self, id: &JobId) -> Vec<String> {
        let job = self.server.job(id).unwrap();
        job.facts().iter().map(|f| f.fact.id.0.clone()).collect()
    }

    fn outcome(&self, who: &ClientId, id: MutationId) -> MutationOutcome {
        let found = self
            .server
            .log()
            .iter()
            .find(|c| &c.client_id == who && c.mutation_id == id);
        found.expect("committed").outcome.clone()
    }
}

#[test]
fn a_job_cancelled_while_completed_offline_keeps_the_facts_and_goes_to_the_dispatcher() {
    let mut w = World::new();
    // Ana is offline and does the whole visit.
    for (fact, status) in [("s1", "en_route"), ("s2", "arrived"), ("s3", "in_progress")] {
        w.status(&ana(), fact, status);
    }
    w.record(
        &ana(),
        "equipment",
        "e1",
        json!({"serial": "ONT-1", "action": "installed"}),
    );
    w.status(&ana(), "s4", "completed");
    // Meanwhile the dispatcher cancels the job.
    w.server.dispatch(&job(), DispatchChange::Cancel).unwrap();

    w.sync(&ana());
    assert_eq!(w.fact_ids(&job()), ["s1", "s2", "s3", "e1", "s4"]);
    let record = w.server.job(&job()).unwrap();
    assert!(
        record.dispatch().cancelled,
        "the dispatcher's field stays theirs"
    );
    assert_eq!(record.status().0, JobStatus::Completed);
    assert!(w
        .flags(&job())
        .iter()
        .any(|f| matches!(f, Flag::WorkOnCancelledJob { fact, .. } if fact.0 == "s4")));
    assert!(w
        .server
        .dispatcher_queue()
        .iter()
        .any(|(j, _)| **j == job()));
    // Ana's phone shows both: cancelled, and completed.
    let view = &w.ana.confirmed()["job/J-1"];
    assert_eq!(
        (view["cancelled"].clone(), view["status"].clone()),
        (json!(true), json!("completed"))
    );
}

#[test]
fn a_job_reassigned_while_offline_keeps_what_the_first_technician_recorded() {
    let mut w = World::new();
    w.status(&ana(), "a1", "en_route");
    w.status(&ana(), "a2", "arrived");
    w.record(&ana(), "note", "a3", json!({"text": "gate code 1234"}));
    // The dispatcher moves the job to bo before ana's phone had signal.
    w.server
        .dispatch(
            &job(),
            DispatchChange::Assign {
                technician: Some(bo()),
            },
        )
        .unwrap();
    w.sync(&bo());
    assert!(w.bo.confirmed().contains_key("job/J-1"));

    w.sync(&ana());
    assert_eq!(w.fact_ids(&job()), ["a1", "a2", "a3"], "nothing dropped");
    assert_eq!(
        w.flags(&job())
            .iter()
            .filter(|f| matches!(f, Flag::FactFromFormerTechnician { technician, .. } if technician == &ana()))
            .count(),
        3
    );
    assert!(
        !w.ana.confirmed().contains_key("job/J-1"),
        "gone from ana's scope"
    );
    assert_eq!(w.ana.pending().len(), 0, "ana's queue drained");

    // Bo sees what ana recorded, and goes on with his own visit from the start.
    w.sync(&bo());
    assert_eq!(
        w.bo.confirmed()["job/J-1"]["facts"][2]["text"],
        "gate code 1234"
    );
    let m = w.status(&bo(), "b1", "en_route");
    w.sync(&bo());
    assert!(matches!(
        w.outcome(&ClientId("bo-phone".into()), m),
        MutationOutcome::Recorded { .. }
    ));
    assert_eq!(w.bo.confirmed()["job/J-1"]["status"], "en_route");
}

#[test]
fn the_same_serial_recorded_by_two_technicians_is_flagged_on_both_jobs_never_dropped() {
    let mut w = World::new();
    w.record(
        &ana(),
        "equipment",
        "e-ana",
        json!({"serial": "zte-0042", "action": "installed"}),
    );
    w.bo.record(
        "equipment",
        json!({"fact_id": "e-bo", "job": "J-2", "at": NOON, "serial": "ZTE-0042 ", "action": "installed"}),
    );
    // Collecting a serial somewhere else is its normal life, not a duplicate.
    w.record(
        &ana(),
        "equipment",
        "e-ana-2",
        json!({"serial": "ZTE-0042", "action": "collected"}),
    );
    w.sync(&ana());
    w.sync(&bo());

    let j2 = JobId::from("J-2");
    assert_eq!(w.fact_ids(&job()), ["e-ana", "e-ana-2"]);
    assert_eq!(w.fact_ids(&j2), ["e-bo"]);
    let on_j2: Vec<_> = w.flags(&j2);
    assert!(
        matches!(&on_j2[..], [Flag::DuplicateSerial { serial, other_job, other_technician, .. }]
        if serial == "ZTE-0042" && other_job == &job() && other_technician == &ana())
    );
    let on_j1: Vec<_> = w.flags(&job());
    assert!(
        matches!(&on_j1[..], [Flag::DuplicateSerial { other_job, other_technician, .. }]
        if other_job == &j2 && other_technician == &bo())
    );
}

#[test]
fn a_phone_clock_a_day_off_is_kept_beside_the_server_time_and_order_follows_the_server() {
    let mut w = World::new();
    // Ana's clock is a day ahead, then a day behind (she "fixed" it wrongly).
    w.record_at(
        &ana(),
        "job_status",
        "s1",
        NOON.plus_millis(DAY),
        json!({"status": "en_route"}),
    );
    w.record_at(
        &ana(),
        "job_status",
        "s2",
        NOON.plus_millis(-DAY),
        json!({"status": "arrived"}),
    );
    w.server.set_now(NOON.plus_millis(Timestamp::MINUTE));
    w.sync(&ana());

    let record = w.server.job(&job()).unwrap();
    let facts = record.facts();
    assert_eq!(facts.len(), 2, "both kept");
    assert!(facts[0].seq < facts[1].seq);
    assert_eq!(facts[0].fact.at, NOON.plus_millis(DAY));
    assert_eq!(facts[1].fact.at, NOON.plus_millis(-DAY));
    assert!(facts
        .iter()
        .all(|f| f.received_at == NOON.plus_millis(Timestamp::MINUTE)));
    // The status is the last one the server received, whatever the phone's clock said.
    assert_eq!(record.status().0, JobStatus::Arrived);
    let clock_flags = w
        .flags(&job())
        .into_iter()
        .filter(|f| matches!(f, Flag::DeviceClockOff { .. }))
        .count();
    assert_eq!(clock_flags, 2);
    // A phone a few seconds off raises nothing.
    w.record_at(
        &ana(),
        "note",
        "n1",
        NOON.plus_millis(30_000),
        json!({"text": "ok"}),
    );
    w.sync(&ana());
    assert_eq!(w.flags(&job()).len(), 2);
}

#[test]
fn a_fact_resent_under_a_new_mutation_id_is_recorded_once() {
    let mut w = World::new();
    let args = json!({"text": "meter reading 4411"});
    w.record(&ana(), "note", "n1", args.clone());
    w.sync(&ana());
    // The app was reinstalled from a backup and queued the same fact again.
    let again = w.record(&ana(), "note", "n1", args);
    w.sync(&ana());
    assert_eq!(w.fact_ids(&job()), ["n1"]);
    assert!(matches!(
        w.outcome(&ClientId("ana-phone".into()), again),
        MutationOutcome::AlreadyRecorded { .. }
    ));
}

#[test]
fn a_fact_id_reused_for_something_else_is_rejected() {
    let mut w = World::new();
    w.record(&ana(), "note", "n1", json!({"text": "first"}));
    let reuse = w.record(&ana(), "note", "n1", json!({"text": "second"}));
    let elsewhere = w.bo.record(
        "note",
        json!({"fact_id": "n1", "job": "J-2", "at": NOON, "text": "first"}),
    );
    w.sync(&ana());
    w.sync(&bo());
    assert_eq!(
        w.outcome(&ClientId("ana-phone".into()), reuse),
        MutationOutcome::Rejected(Rejection::FactIdReused { fact: "n1".into() })
    );
    assert!(matches!(
        w.outcome(&ClientId("bo-phone".into()), elsewhere),
        MutationOutcome::Rejected(Rejection::FactIdReused { .. })
    ));
}

#[test]
fn a_status_going_backwards_is_rejected_and_the_rest_still_applies() {
    let mut w = World::new();
    w.status(&ana(), "s1", "arrived");
    let back = w.status(&ana(), "s2", "en_route");
    let again = w.status(&ana(), "s3", "arrived");
    w.status(&ana(), "s4", "completed");
    let after_final = w.record(
        &ana(),
        "job_status",
        "s5",
        json!({"status": "failed", "reason": "no_access"}),
    );
    w.record(&ana(), "note", "n1", json!({"text": "done"}));
    w.sync(&ana());

    let ana_phone = ClientId("ana-phone".into());
    for m in [back, again, after_final] {
        assert!(matches!(
            w.outcome(&ana_phone, m),
            MutationOutcome::Rejected(Rejection::StatusOutOfOrder { .. })
        ));
    }
    assert_eq!(w.fact_ids(&job()), ["s1", "s4", "n1"]);
    assert_eq!(w.ana.confirmed()["job/J-1"]["status"], "completed");
    assert_eq!(w.ana.pending().len(), 0);
}

#[test]
fn dispatcher_changes_never_touch_facts_and_facts_never_touch_dispatcher_fields() {
    let mut w = World::new();
    w.status(&ana(), "s1", "en_route");
    // An upsell's fact id is the offer's id, made on the phone.
    w.ana.record(
        "upsell_outcome",
        json!({"offer_id": "offer-1", "job": "J-1", "at": NOON, "product_code": "MESH-2",
            "price_cents": 2500, "billing": "one_off", "outcome": "declined"}),
    );
    w.sync(&ana());
    let before = w.server.job(&job()).unwrap().clone();
    let later = TimeWindow::new(NOON.plus_millis(DAY), NOON.plus_millis(DAY + 3_600_000)).unwrap();
    w.server
        .dispatch(&job(), DispatchChange::Window { window: later })
        .unwrap();
    w.server
        .dispatch(
            &job(),
            DispatchChange::Address {
                address: "New street 2".into(),
            },
        )
        .unwrap();
    let after = w.server.job(&job()).unwrap().clone();
    assert_eq!(after.facts(), before.facts());
    assert_eq!(after.dispatch().window, later);
    assert!(matches!(
        &after.facts()[1].fact.kind,
        FactKind::Upsell { product_code, .. } if product_code == "MESH-2"
    ));
    assert_eq!(after.facts()[1].fact.id.0, "offer-1");

    w.record(
        &ana(),
        "customer_confirmation",
        "c1",
        json!({"signer_name": "M. Pérez"}),
    );
    w.sync(&ana());
    let last = w.server.job(&job()).unwrap();
    assert_eq!(last.dispatch(), after.dispatch());
    assert_eq!(w.ana.confirmed()["job/J-1"]["address"], "New street 2");
}
