//! Recovery and refusal (RELIABILITY.md, test 8): a bad cookie gets `clear` + a
//! full snapshot and the device recovers; an unknown schema version and another
//! technician's device get a clear refusal; a mutation that can never succeed is
//! rejected without blocking the queue; a temporary failure loses nothing.

use despacho_mobile_sync::{
    generate_message, generate_pull, receive_message, receive_pull, ClientId, ClientState, Cookie,
    CookieKey, DecodeError, DispatchChange, DispatchFields, Epoch, JobId, MemoryServer, MutationId,
    MutationOutcome, PatchOp, PullOutcome, PullRequest, PullResponse, PushMessage, Rejection,
    ServerError, ServerMessage, TechnicianId, TimeWindow, Timestamp,
};
use serde_json::json;

fn ana() -> TechnicianId {
    TechnicianId::from("ana")
}

fn bo() -> TechnicianId {
    TechnicianId::from("bo")
}

fn fields(technician: &TechnicianId) -> DispatchFields {
    DispatchFields {
        technician: Some(technician.clone()),
        window: TimeWindow::new(Timestamp(0), Timestamp(7_200_000)).unwrap(),
        address: "Calle Mayor 1".into(),
        cancelled: false,
    }
}

/// A server with jobs J-1, J-2 for ana and J-3 for bo, and ana's phone registered.
fn setup() -> (MemoryServer, ClientState) {
    let mut server = MemoryServer::new(CookieKey::new(b"secret".to_vec()), Epoch(1));
    server
        .create_job(JobId::from("J-1"), fields(&ana()))
        .unwrap();
    server
        .create_job(JobId::from("J-2"), fields(&ana()))
        .unwrap();
    server
        .create_job(JobId::from("J-3"), fields(&bo()))
        .unwrap();
    let phone = ClientState::new(ClientId("ana-phone".into()));
    server.register_device(&ana(), phone.client_id()).unwrap();
    (server, phone)
}

fn pull(server: &MemoryServer, phone: &mut ClientState) -> PullOutcome {
    let wire = server
        .handle_pull(&ana(), &generate_pull(phone).encode())
        .unwrap();
    receive_pull(phone, PullResponse::decode(&wire).unwrap()).unwrap()
}

fn push(server: &mut MemoryServer, phone: &mut ClientState) -> Result<usize, ServerError> {
    let wire = generate_message(phone).unwrap().encode();
    let answer = server.handle_push(&ana(), &wire)?;
    Ok(receive_message(phone, ServerMessage::decode(&answer).unwrap()).unwrap())
}

fn note(phone: &mut ClientState, fact: &str, job: &str) -> MutationId {
    phone.record(
        "note",
        json!({"fact_id": fact, "job": job, "at": 0, "text": "hello"}),
    )
}

#[test]
fn a_forged_cookie_gets_clear_and_a_full_snapshot_and_the_device_recovers() {
    let (server, mut phone) = setup();
    pull(&server, &mut phone);
    let good = phone.clone();

    // The phone's stored cookie was edited to skip ahead (or was made with an old key).
    let mut stored = serde_json::to_value(&phone).unwrap();
    let mut parts: Vec<String> = stored["cookie"]
        .as_str()
        .unwrap()
        .split('.')
        .map(str::to_owned)
        .collect();
    assert_eq!(parts[2], "2", "ana's scope is at version 2");
    parts[2] = "1".into();
    stored["cookie"] = json!(parts.join("."));
    stored["confirmed"]["job/J-1"] = json!("corrupted");
    stored["confirmed"]["job/ghost"] = json!({});
    let mut phone: ClientState = serde_json::from_value(stored).unwrap();

    let answer = server
        .pull(&ana(), &generate_pull(&phone))
        .expect("a bad cookie is not an error");
    assert_eq!(answer.patch[0], PatchOp::Clear);
    assert_eq!(answer.patch.len(), 3, "clear + both of ana's jobs");
    assert!(matches!(
        receive_pull(&mut phone, answer),
        Ok(PullOutcome::Applied { reset: true, .. })
    ));
    assert_eq!(phone.confirmed(), &server.scope_view(&ana()));
    assert_eq!(phone.confirmed(), good.confirmed());
    // And the next pull is an ordinary, empty diff: no error loop.
    assert_eq!(
        pull(&server, &mut phone),
        PullOutcome::Applied {
            reset: false,
            operations: 0
        }
    );
}

#[test]
fn garbage_cookies_and_cookies_of_another_server_life_get_a_full_snapshot() {
    let (mut server, mut phone) = setup();
    for cookie in [
        Cookie::from_text(""),
        Cookie::from_text("not a cookie"),
        Cookie::from_text("c1.1.99999.616e61.00"),
    ] {
        let request = PullRequest {
            client_id: phone.client_id().clone(),
            cookie: Some(cookie),
        };
        let answer = server.pull(&ana(), &request).unwrap();
        assert!(answer.is_reset(), "{:?}", request.cookie);
    }
    // A restore from backup starts a new epoch: every held cookie is stale.
    pull(&server, &mut phone);
    server.start_new_epoch();
    assert!(matches!(
        pull(&server, &mut phone),
        PullOutcome::Applied { reset: true, .. }
    ));
    assert_eq!(phone.confirmed(), &server.scope_view(&ana()));
}

#[test]
fn a_cookie_of_another_technician_gets_a_full_snapshot_of_ones_own_scope() {
    let (mut server, mut phone) = setup();
    let bo_phone = ClientState::new(ClientId("bo-phone".into()));
    server.register_device(&bo(), bo_phone.client_id()).unwrap();
    let bo_cookie = server
        .pull(&bo(), &generate_pull(&bo_phone))
        .unwrap()
        .cookie;
    let request = PullRequest {
        client_id: phone.client_id().clone(),
        cookie: Some(bo_cookie),
    };
    let answer = server.pull(&ana(), &request).unwrap();
    assert!(answer.is_reset());
    assert!(answer
        .patch
        .iter()
        .all(|op| !matches!(op, PatchOp::Put { key, .. } if key == "job/J-3")));
    pull(&server, &mut phone);
    assert_eq!(phone.confirmed().len(), 2);
}

#[test]
fn an_unknown_schema_version_is_refused_clearly() {
    let (mut server, mut phone) = setup();
    note(&mut phone, "f-1", "J-1");
    let push = generate_message(&mut phone)
        .unwrap()
        .encode()
        .replace(r#""schema_version":1"#, r#""schema_version":2"#);
    let err = server.handle_push(&ana(), &push).unwrap_err();
    assert!(matches!(
        err,
        ServerError::Decode(DecodeError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    ));
    assert!(err
        .to_string()
        .contains("unsupported sync schema version 2"));
    let pull = r#"{"schema_version":3,"message":{"client_id":"ana-phone"}}"#;
    assert!(matches!(
        server.handle_pull(&ana(), pull),
        Err(ServerError::Decode(DecodeError::UnsupportedVersion {
            found: 3,
            ..
        }))
    ));
    // Nothing was applied.
    assert_eq!(
        server.last_mutation_id(phone.client_id()),
        Some(MutationId(0))
    );
    assert!(server.log().is_empty());
}

#[test]
fn another_technicians_device_is_refused() {
    let (mut server, mut phone) = setup();
    note(&mut phone, "f-1", "J-1");
    let wire = generate_message(&mut phone).unwrap().encode();
    // Bo logs in and presents ana's device id.
    let err = server.handle_push(&bo(), &wire).unwrap_err();
    assert!(
        matches!(err, ServerError::DeviceOfAnotherTechnician { ref owner, .. } if owner == &ana())
    );
    assert!(
        err.to_string().contains("belongs to technician ana"),
        "{err}"
    );
    assert!(matches!(
        server.handle_pull(&bo(), &generate_pull(&phone).encode()),
        Err(ServerError::DeviceOfAnotherTechnician { .. })
    ));
    assert!(matches!(
        server.register_device(&bo(), phone.client_id()),
        Err(ServerError::DeviceOfAnotherTechnician { .. })
    ));
    // An unknown device is refused too, until registered.
    let stranger = PushMessage {
        client_id: ClientId("stranger".into()),
        mutations: vec![],
    };
    assert!(matches!(
        server.push(&ana(), &stranger),
        Err(ServerError::DeviceNotRegistered { .. })
    ));
    assert!(server.log().is_empty());
    // The owner is still served.
    assert_eq!(push(&mut server, &mut phone).unwrap(), 1);
}

#[test]
fn a_mutation_that_can_never_succeed_is_rejected_and_the_queue_moves_on() {
    let (mut server, mut phone) = setup();
    pull(&server, &mut phone);
    note(&mut phone, "f-1", "J-1");
    phone.record("teleport", json!({"fact_id": "f-2", "job": "J-1", "at": 0}));
    note(&mut phone, "f-3", "J-3"); // bo's job, never ana's
    note(&mut phone, "f-4", "J-404");
    phone.record(
        "note",
        json!({"fact_id": "f-5", "job": "J-1", "at": 0, "text": ""}),
    );
    note(&mut phone, "f-6", "J-2");

    assert_eq!(push(&mut server, &mut phone).unwrap(), 6);
    assert_eq!(phone.pending().len(), 0, "the queue drained");
    let outcomes: Vec<_> = server.log().iter().map(|c| &c.outcome).collect();
    assert!(matches!(outcomes[0], MutationOutcome::Recorded { .. }));
    assert!(matches!(
        outcomes[1],
        MutationOutcome::Rejected(Rejection::UnknownMutation { .. })
    ));
    assert!(matches!(
        outcomes[2],
        MutationOutcome::Rejected(Rejection::NotYourJob { .. })
    ));
    assert!(matches!(
        outcomes[3],
        MutationOutcome::Rejected(Rejection::UnknownJob { .. })
    ));
    assert!(matches!(
        outcomes[4],
        MutationOutcome::Rejected(Rejection::InvalidArgs { .. })
    ));
    assert!(matches!(outcomes[5], MutationOutcome::Recorded { .. }));

    // The technician learns of each rejection through their scope.
    pull(&server, &mut phone);
    let rejected = &phone.confirmed()["rejected/ana-phone/3"];
    assert_eq!(rejected["rejection"]["code"], "not_your_job");
    assert_eq!(rejected["mutation"], "note");
    assert_eq!(
        phone
            .confirmed()
            .keys()
            .filter(|k| k.starts_with("rejected/"))
            .count(),
        4
    );
    // And the two good notes are in the jobs.
    assert_eq!(phone.view()["job/J-1"]["facts"][0]["id"], "f-1");
    assert_eq!(phone.view()["job/J-2"]["facts"][0]["id"], "f-6");
}

#[test]
fn a_temporary_failure_advances_nothing_and_a_resend_applies_the_rest_once() {
    let (mut server, mut phone) = setup();
    for k in 1..=4 {
        note(&mut phone, &format!("f-{k}"), "J-1");
    }
    let wire = generate_message(&mut phone).unwrap().encode();
    server.inject_temporary_failures(1);
    assert!(matches!(
        server.handle_push(&ana(), &wire),
        Err(ServerError::Temporary)
    ));
    assert_eq!(
        server.last_mutation_id(phone.client_id()),
        Some(MutationId(0))
    );
    assert!(server.log().is_empty());

    // The same push again, twice (the first answer is lost).
    server.handle_push(&ana(), &wire).unwrap();
    let answer = server.handle_push(&ana(), &wire).unwrap();
    receive_message(&mut phone, ServerMessage::decode(&answer).unwrap()).unwrap();
    assert_eq!(server.log().len(), 4, "each mutation once");
    assert_eq!(server.job(&JobId::from("J-1")).unwrap().facts().len(), 4);
    assert_eq!(phone.last_acknowledged(), MutationId(4));
}

#[test]
fn a_push_that_skips_mutations_is_refused_not_half_applied() {
    let (mut server, mut phone) = setup();
    for k in 1..=3 {
        note(&mut phone, &format!("f-{k}"), "J-1");
    }
    let mut push = generate_message(&mut phone).unwrap();
    push.mutations.remove(0);
    assert!(matches!(
        server.push(&ana(), &push),
        Err(ServerError::MissingMutations {
            expected: MutationId(1),
            got: MutationId(2)
        })
    ));
    assert!(server.log().is_empty());
}

#[test]
fn a_job_moved_away_disappears_from_the_old_scope_and_appears_in_the_new() {
    let (mut server, mut phone) = setup();
    let bo_phone_id = ClientId("bo-phone".into());
    server.register_device(&bo(), &bo_phone_id).unwrap();
    let mut bo_phone = ClientState::new(bo_phone_id);
    pull(&server, &mut phone);
    let first = server.pull(&bo(), &generate_pull(&bo_phone)).unwrap();
    receive_pull(&mut bo_phone, first).unwrap();

    let before = (server.scope_version(&ana()), server.scope_version(&bo()));
    server
        .dispatch(
            &JobId::from("J-1"),
            DispatchChange::Assign {
                technician: Some(bo()),
            },
        )
        .unwrap();
    // One transaction: each touched scope moved by exactly one version.
    assert_eq!(server.scope_version(&ana()).0, before.0 .0 + 1);
    assert_eq!(server.scope_version(&bo()).0, before.1 .0 + 1);

    let answer = server.pull(&ana(), &generate_pull(&phone)).unwrap();
    assert_eq!(
        answer.patch,
        [PatchOp::Del {
            key: "job/J-1".into()
        }]
    );
    receive_pull(&mut phone, answer).unwrap();
    let answer = server.pull(&bo(), &generate_pull(&bo_phone)).unwrap();
    assert!(matches!(&answer.patch[..], [PatchOp::Put { key, .. }] if key == "job/J-1"));
    receive_pull(&mut bo_phone, answer).unwrap();
    assert_eq!(phone.confirmed(), &server.scope_view(&ana()));
    assert_eq!(bo_phone.confirmed(), &server.scope_view(&bo()));
    // A no-op change writes nothing.
    let v = server.scope_version(&bo());
    assert!(!server
        .dispatch(
            &JobId::from("J-1"),
            DispatchChange::Assign {
                technician: Some(bo())
            }
        )
        .unwrap());
    assert_eq!(server.scope_version(&bo()), v);
}
