//! Named territories (issue 7): stored with their members and checked, a member works
//! inside its territory, a day plan seen and measured one territory at a time, and an
//! optimisation run of one territory that leaves the other routes as they were; each
//! on SQLite and PostgreSQL.

use crate::common::*;
use axum::http::StatusCode;
use despacho_api::server::Role;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const DAY: &str = "2026-03-02";
const CUT_LON: f64 = -46.65;

/// A rectangle `[lon, lat]` ring, counter-clockwise.
fn rectangle(west: f64, east: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[
        [west, -23.65], [east, -23.65], [east, -23.45], [west, -23.45], [west, -23.65]
    ]]})
}

fn territory(id: &str, west: f64, east: f64, technicians: &[&str]) -> Value {
    json!({"id": id, "name": format!("Zona {id}"), "area": rectangle(west, east),
           "technicians": technicians})
}

/// A technician living at `lon` (west of the cut or east of it).
fn technician_at(id: &str, lon: f64) -> Value {
    let mut t = technician(id);
    t["home"] = json!({"lat": -23.55, "lon": lon});
    t
}

/// A 45-minute fibre job at `lon`, startable 08:00–16:00.
fn job_at(id: &str, lat: f64, lon: f64) -> Value {
    json!({
        "id": id,
        "kind": "repair",
        "place": {"lat": lat, "lon": lon},
        "duration_minutes": 45,
        "required_skills": {"fiber_splicing": 1},
        "windows": [{"start": format!("{DAY}T08:00:00-03:00"),
                     "end": format!("{DAY}T16:00:00-03:00")}],
        "priority": 5
    })
}

const WEST_TECHS: [&str; 2] = ["w1", "w2"];
const EAST_TECHS: [&str; 2] = ["e1", "e2"];

/// Two technicians and five jobs on each side of the cut, one job north of both
/// areas; territories `west` and `east` with their technicians. Returns a dispatcher key.
async fn setup(s: &TestServer) -> String {
    let settings = json!({"time_zone": "America/Sao_Paulo"});
    let r = s.put("/v1/settings", Some(&s.admin_key), &settings).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (id, lon) in [
        ("w1", -46.70),
        ("w2", -46.69),
        ("e1", -46.60),
        ("e2", -46.61),
    ] {
        let r = s
            .post(
                "/v1/technicians",
                Some(&s.admin_key),
                &technician_at(id, lon),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let mut jobs = Vec::new();
    for k in 0..5 {
        let d = f64::from(k) * 0.006;
        jobs.push(job_at(&format!("west-{k}"), -23.52 - d, -46.72 + d));
        jobs.push(job_at(&format!("east-{k}"), -23.52 - d, -46.58 - d));
    }
    jobs.push(job_at("north", -23.40, -46.64));
    for j in jobs {
        let r = s
            .post("/v1/jobs", Some(&s.admin_key), &json!({"job": j}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let key = s.key(Role::Dispatcher, None).await.1;
    for t in [
        territory("west", -46.80, CUT_LON, &WEST_TECHS),
        territory("east", CUT_LON, -46.50, &EAST_TECHS),
    ] {
        let r = s.post("/v1/territories", Some(&key), &t).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    key
}

async fn optimize(s: &TestServer, key: &str, body: Value) -> Value {
    let r = s
        .post(&format!("/v1/plans/{DAY}/optimize"), Some(key), &body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

async fn read(s: &TestServer, key: &str, territory: Option<&str>) -> Value {
    let path = match territory {
        Some(t) => format!("/v1/plans/{DAY}?territory={t}"),
        None => format!("/v1/plans/{DAY}"),
    };
    let r = s.get(&path, Some(key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

/// Technician → its jobs in order.
fn routes(view: &Value) -> Vec<(String, Vec<String>)> {
    view["plan"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let jobs = r["stops"].as_array().unwrap().iter();
            (
                r["technician"].as_str().unwrap().to_owned(),
                jobs.map(|s| s["job"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

async fn territories_are_stored_with_their_members_and_checked(s: TestServer) {
    let key = setup(&s).await;
    let list = s.get("/v1/territories", Some(&key)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let items = list.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], "east");
    assert_eq!(
        strings(&items[0]["technicians"]),
        strings(&json!(EAST_TECHS))
    );
    assert_eq!(items[1]["area"], rectangle(-46.80, CUT_LON));

    // Taken id; a technician of another territory; unknown and twice-listed
    // technicians; a broken area: each named by its path.
    let again = s
        .post(
            "/v1/territories",
            Some(&key),
            &territory("west", -46.8, -46.7, &[]),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    let mut bad = territory("north", -46.8, -46.5, &["w1", "ghost", "e1", "e1"]);
    bad["area"]["coordinates"][0][2] = json!([200.0, -23.45]);
    let r = s.post("/v1/territories", Some(&key), &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let paths = r.paths();
    for p in [
        "$.technicians[0]",
        "$.technicians[1]",
        "$.technicians[3]",
        "$.area.coordinates[0][2]",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} missing: {}", r.text);
    }
    assert!(r.text.contains("member of territory `west`"), "{}", r.text);
    let mismatch = s
        .put(
            "/v1/territories/other",
            Some(&key),
            &territory("west", -46.8, -46.7, &[]),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(mismatch.paths(), ["$.id"]);

    // A move between territories is two explicit steps; PUT replaces the members.
    let r = s
        .put(
            "/v1/territories/west",
            Some(&key),
            &territory("west", -46.80, CUT_LON, &["w1"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s
        .put(
            "/v1/territories/east",
            Some(&key),
            &territory("east", CUT_LON, -46.50, &["e1", "e2", "w2"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        strings(&r.json["technicians"]),
        strings(&json!(["e1", "e2", "w2"]))
    );

    // Deleting a technician removes its membership; deleting a territory frees its
    // members; a second delete is a 404.
    let r = s.delete("/v1/technicians/w2", Some(&key)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let east = s.get("/v1/territories/east", Some(&key)).await;
    assert_eq!(
        strings(&east.json["technicians"]),
        strings(&json!(["e1", "e2"]))
    );
    assert_eq!(
        s.delete("/v1/territories/east", Some(&key)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.delete("/v1/territories/east", Some(&key)).await.status,
        StatusCode::NOT_FOUND
    );
    let r = s
        .post(
            "/v1/territories",
            Some(&key),
            &territory("east2", CUT_LON, -46.5, &["e1"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // Chatbot and technician keys may not read or write territories.
    let chatbot = s.key(Role::Chatbot, None).await.1;
    assert_eq!(
        s.get("/v1/territories", Some(&chatbot)).await.status,
        StatusCode::FORBIDDEN
    );
}
both_backends!(territories_are_stored_with_their_members_and_checked);

async fn a_territory_view_shows_its_routes_jobs_and_kpis(s: TestServer) {
    let key = setup(&s).await;
    let day = optimize(&s, &key, json!({"seconds": 1, "wait": true})).await;
    // Members work inside their territory: no route crosses the cut, and the job north
    // of both areas has nobody (every technician is a member).
    for (technician, jobs) in routes(&day) {
        let side = if WEST_TECHS.contains(&technician.as_str()) {
            "west-"
        } else {
            "east-"
        };
        assert!(
            jobs.iter().all(|j| j.starts_with(side)),
            "{technician}: {jobs:?}"
        );
    }
    let north = day["plan"]["unassigned"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["job"] == "north")
        .unwrap_or_else(|| panic!("north is planned: {day}"));
    assert_eq!(north["reason"], "outside_territory", "{north}");

    for (name, techs, side) in [("west", WEST_TECHS, "west-"), ("east", EAST_TECHS, "east-")] {
        let view = read(&s, &key, Some(name)).await;
        assert_eq!(view["territory"], name);
        assert_eq!(view["version"], day["version"]);
        let mine: Vec<_> = routes(&day)
            .into_iter()
            .filter(|(t, _)| techs.contains(&t.as_str()))
            .collect();
        assert_eq!(
            routes(&view),
            mine,
            "{name}: the day's routes of its technicians"
        );
        let planned: usize = mine.iter().map(|(_, j)| j.len()).sum();
        assert_eq!(view["kpis"]["solver"]["jobs_assigned"], planned, "{name}");
        let kpi_techs: BTreeSet<String> = view["kpis"]["technicians"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["technician"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kpi_techs, strings(&json!(techs)), "{name}");
        for u in view["plan"]["unassigned"].as_array().unwrap() {
            assert!(u["job"].as_str().unwrap().starts_with(side), "{name}: {u}");
        }
        let on_map: Vec<&String> = view["places"]["jobs"].as_object().unwrap().keys().collect();
        assert!(
            on_map.iter().all(|j| j.starts_with(side)),
            "{name}: {on_map:?}"
        );
        // The whole day's travel is the sum of the territories' (nothing else is planned).
        assert!(view["kpis"]["solver"]["travel_km"].as_f64().unwrap() > 0.0);
    }
    let total = |v: &Value| v["kpis"]["solver"]["travel_km"].as_f64().unwrap();
    let (west, east) = (
        read(&s, &key, Some("west")).await,
        read(&s, &key, Some("east")).await,
    );
    assert!(
        (total(&west) + total(&east) - total(&day)).abs() < 0.05,
        "{} + {} vs {}",
        total(&west),
        total(&east),
        total(&day)
    );

    // Unknown territory: 404; a territory nobody of which works that day: 409.
    let r = s
        .get(&format!("/v1/plans/{DAY}?territory=nowhere"), Some(&key))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = s
        .post(
            "/v1/territories",
            Some(&key),
            &territory("empty", -46.9, -46.85, &[]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = s
        .get(&format!("/v1/plans/{DAY}?territory=empty"), Some(&key))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "no_technicians_in_territory");
    let r = s
        .get(&format!("/v1/plans/{DAY}?territory=west&x=1"), Some(&key))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}
both_backends!(a_territory_view_shows_its_routes_jobs_and_kpis);

async fn optimising_a_territory_leaves_the_other_routes_as_they_were(s: TestServer) {
    let key = setup(&s).await;
    optimize(&s, &key, json!({"seconds": 1, "wait": true})).await;
    // A manual change in the east: e1's visits reversed, a worse order the east keeps.
    let before = read(&s, &key, None).await;
    let e1: Vec<String> = routes(&before)
        .into_iter()
        .find(|(t, _)| t == "e1")
        .map(|(_, j)| j)
        .unwrap_or_default();
    assert!(!e1.is_empty(), "{before}");
    let last = e1.last().unwrap().clone();
    let r = s
        .post(
            &format!("/v1/plans/{DAY}/changes"),
            Some(&key),
            &json!({"move": {"job": last, "to": "e1", "position": 0}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let changed = read(&s, &key, None).await;
    let east_before: Vec<_> = routes(&changed)
        .into_iter()
        .filter(|(t, _)| EAST_TECHS.contains(&t.as_str()))
        .collect();

    // Re-plan the west only, with another seed: the east routes are untouched.
    let west = optimize(
        &s,
        &key,
        json!({"seconds": 1, "seed": 7, "wait": true, "territory": "west"}),
    )
    .await;
    assert_eq!(west["territory"], "west");
    let after = read(&s, &key, None).await;
    assert_eq!(
        after["version"].as_i64(),
        changed["version"].as_i64().map(|v| v + 1)
    );
    let east_after: Vec<_> = routes(&after)
        .into_iter()
        .filter(|(t, _)| EAST_TECHS.contains(&t.as_str()))
        .collect();
    assert_eq!(east_after, east_before);
    let west_jobs: usize = routes(&after)
        .iter()
        .filter(|(t, _)| WEST_TECHS.contains(&t.as_str()))
        .map(|(_, j)| j.len())
        .sum();
    assert_eq!(
        west_jobs, 5,
        "every west job is planned in the west: {after}"
    );
    assert!(
        after["violations"].as_array().unwrap().is_empty(),
        "{after}"
    );

    // The run and the audit line say which territory.
    let audit = s.get(&format!("/v1/plans/{DAY}/audit"), Some(&key)).await;
    let last = audit.json["entries"]
        .as_array()
        .or_else(|| audit.json.as_array())
        .and_then(|a| a.last().cloned())
        .unwrap_or_else(|| panic!("{}", audit.text));
    assert_eq!(last["action"], "optimize");
    assert_eq!(last["details"]["territory"], "west", "{last}");

    // Unknown territory in the request: 422 naming the field; nothing queued.
    let r = s
        .post(
            &format!("/v1/plans/{DAY}/optimize"),
            Some(&key),
            &json!({"seconds": 1, "territory": "nowhere"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.territory"]);
    assert_eq!(read(&s, &key, None).await["version"], after["version"]);

    // A queued territory run shows its territory.
    let r = s
        .post(
            &format!("/v1/plans/{DAY}/optimize"),
            Some(&key),
            &json!({"seconds": 1, "territory": "east"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.json["territory"], "east");
}
both_backends!(optimising_a_territory_leaves_the_other_routes_as_they_were);

/// The jobs on a phone.
fn phone_jobs(phone: &serde_json::Map<String, Value>) -> BTreeSet<String> {
    phone
        .keys()
        .filter_map(|k| k.strip_prefix("job/"))
        .map(str::to_owned)
        .collect()
}

fn jobs_of(view: &Value, technician: &str) -> BTreeSet<String> {
    routes(view)
        .into_iter()
        .filter(|(t, _)| t == technician)
        .flat_map(|(_, jobs)| jobs)
        .collect()
}

/// Publishing one territory changes only its technicians' phones; the other
/// territories' changes stay a draft, published later on their own or with the day.
async fn publishing_a_territory_changes_only_its_phones(s: TestServer) {
    let key = setup(&s).await;
    let mut phones = Vec::new();
    for t in ["w1", "e1"] {
        phones.push((t, s.key(Role::Technician, Some(t)).await.1));
    }
    let day = optimize(&s, &key, json!({"seconds": 1, "wait": true})).await;
    let publish = |t: &str| format!("/v1/plans/{DAY}/publish?territory={t}");

    // West first: its phones get their routes, the east's phones nothing; the east's
    // routes are kept as a new draft.
    let r = s.post(&publish("west"), Some(&key), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["territory"], "west");
    let published = r.json["version"].as_i64().unwrap();
    assert_eq!(published, day["version"].as_i64().unwrap() + 1);
    assert_eq!(
        r.json["draft_version"].as_i64(),
        Some(published + 1),
        "{}",
        r.text
    );
    for (t, k) in &phones {
        let phone = phone_view(&s, k, t).await;
        if *t == "w1" {
            assert_eq!(phone_jobs(&phone), jobs_of(&day, "w1"), "{phone:?}");
            assert_eq!(phone[&format!("plan/{DAY}")]["version"], published);
        } else {
            assert!(phone_jobs(&phone).is_empty(), "{t}: {phone:?}");
            assert!(
                !phone.contains_key(&format!("plan/{DAY}")),
                "{t}: {phone:?}"
            );
        }
    }
    let west_view = read(&s, &key, Some("west")).await;
    assert_eq!(west_view["territory_published"], true, "{west_view}");
    assert_eq!(
        read(&s, &key, Some("east")).await["territory_published"],
        false
    );
    assert_eq!(
        read(&s, &key, None).await["territory_published"],
        Value::Null
    );
    let view = read(&s, &key, None).await;
    assert_eq!(view["state"], "draft");
    assert_eq!(view["published_version"], published);
    assert_eq!(routes(&view), routes(&day), "the draft keeps every route");
    assert_eq!(
        view["changes_since_publish"].as_array().unwrap().len(),
        1,
        "{view}"
    );
    let again = s.post(&publish("west"), Some(&key), &json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.code(), "already_published");

    // A change in the west is not on the phones until the west publishes again; the
    // east's publishing leaves w1's phone as it was.
    let w1 = jobs_of(&day, "w1");
    let moved = w1.iter().next().unwrap().clone();
    let r = s
        .post(
            &format!("/v1/plans/{DAY}/changes"),
            Some(&key),
            &json!({"unassign": {"job": moved}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s.post(&publish("east"), Some(&key), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let east_version = r.json["version"].as_i64().unwrap();
    assert!(
        r.json["draft_version"].is_i64(),
        "the west change stays a draft: {}",
        r.text
    );
    let e1 = phone_view(&s, &phones[1].1, "e1").await;
    assert_eq!(phone_jobs(&e1), jobs_of(&day, "e1"));
    assert_eq!(e1[&format!("plan/{DAY}")]["version"], east_version);
    let w1_phone = phone_view(&s, &phones[0].1, "w1").await;
    assert!(
        w1_phone.contains_key(&format!("job/{moved}")),
        "{w1_phone:?}"
    );

    // Publishing the whole day then takes the west change too.
    let r = s
        .post(&format!("/v1/plans/{DAY}/publish"), Some(&key), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let w1_phone = phone_view(&s, &phones[0].1, "w1").await;
    assert!(
        !w1_phone.contains_key(&format!("job/{moved}")),
        "{w1_phone:?}"
    );
    let audit = s.get(&format!("/v1/plans/{DAY}/audit"), Some(&key)).await;
    let territories: Vec<Value> = audit.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "publish")
        .map(|e| e["details"]["territory"].clone())
        .collect();
    assert_eq!(territories, [json!("west"), json!("east"), Value::Null]);

    // Unknown territory: 404, and nothing changes.
    let r = s.post(&publish("nowhere"), Some(&key), &json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}
both_backends!(publishing_a_territory_changes_only_its_phones);
