//! Validation and compilation of the field-service problem: every validation code with
//! its path, DST-correct times, the technician filters, blockers and the rules' values.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use despacho_solver::field::compile::{
    compile, local_instant, Blocker, Compiled, PreviousAssignment, VehicleRef,
    COST_UNITS_PER_CURRENCY,
};
use despacho_solver::field::input::{
    BreakRule, Equipment, JobInput, Place, ProblemInput, Shift, Technician, Territory, WindowInput,
};
use despacho_solver::field::travel::TravelOptions;
use despacho_solver::field::validate::{validate, ValidationErrors};
use despacho_solver::{schedule_route, solve, Cost, Duration, SolverConfig, TimeWindow};
use serde_json::json;
use std::collections::HashMap;

const H: i64 = 3600;

/// Lisbon, one technician working 08:00–17:00 on Saturday 28 March 2026, one fiber repair
/// with a 09:00–12:00 UTC window (Lisbon is on UTC+0 that day).
fn minimal() -> ProblemInput {
    serde_json::from_value(json!({
        "version": 1,
        "time_zone": "Europe/Lisbon",
        "skills": ["fiber", "pppoe"],
        "technicians": [{
            "id": "ana",
            "skills": {"fiber": 3, "pppoe": 1},
            "home": {"lat": 38.72, "lon": -9.14},
            "shifts": [{"date": "2026-03-28", "start": "08:00", "end": "17:00"}],
            "cost_per_hour": 20.0,
            "cost_per_km": 0.5
        }],
        "jobs": [{
            "id": "j1",
            "kind": "repair",
            "place": {"lat": 38.73, "lon": -9.15},
            "duration_minutes": 60,
            "required_skills": {"fiber": 2},
            "windows": [{"start": "2026-03-28T09:00:00Z", "end": "2026-03-28T12:00:00Z"}]
        }]
    }))
    .unwrap()
}

fn time(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M").unwrap()
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn instant(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn window(start: &str, end: &str) -> WindowInput {
    WindowInput {
        start: instant(start),
        end: instant(end),
    }
}

fn shift(d: &str, start: &str, end: &str) -> Shift {
    Shift {
        date: date(d),
        start: time(start),
        end: time(end),
        start_place: None,
        end_place: None,
        break_rule: None,
        overtime_minutes: 0,
        overtime_cost_per_hour: 0.0,
    }
}

fn technician(id: &str, skills: &[(&str, u8)]) -> Technician {
    let mut t = minimal().technicians.remove(0);
    t.id = id.to_owned();
    t.skills = skills.iter().map(|&(s, l)| (s.to_owned(), l)).collect();
    t
}

fn job(id: &str) -> JobInput {
    let mut j = minimal().jobs.remove(0);
    j.id = id.to_owned();
    j
}

/// A square around Lisbon's centre (the jobs' default place is inside).
fn square(lon: f64, lat: f64, half: f64) -> Vec<Vec<[f64; 2]>> {
    vec![vec![
        [lon - half, lat - half],
        [lon + half, lat - half],
        [lon + half, lat + half],
        [lon - half, lat + half],
        [lon - half, lat - half],
    ]]
}

fn compiled(input: &ProblemInput) -> Compiled {
    match compile(input, &HashMap::new()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn errors(input: &ProblemInput) -> Vec<(String, &'static str)> {
    match validate(input) {
        Ok(()) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| (e.path, e.code)).collect(),
    }
}

/// The mutation gives exactly this one problem.
#[track_caller]
fn rejects(mutate: impl FnOnce(&mut ProblemInput), path: &str, code: &str) {
    let mut input = minimal();
    mutate(&mut input);
    assert_eq!(
        errors(&input),
        vec![(path.to_owned(), code)],
        "expected {code} at {path}"
    );
}

fn allowed(c: &Compiled, job: usize) -> Option<Vec<usize>> {
    c.problem.rules().unwrap().jobs[job].allowed.clone()
}

// ---------------------------------------------------------------------------------
// Validation

#[test]
fn accepts_the_minimal_problem() {
    assert_eq!(errors(&minimal()), vec![]);
}

#[test]
fn rejects_other_versions_and_unknown_time_zones() {
    rejects(|p| p.version = 2, "$.version", "unsupported_version");
    rejects(
        |p| p.time_zone = "Mars/Olympus".into(),
        "$.time_zone",
        "unknown_time_zone",
    );
}

#[test]
fn rejects_duplicate_and_empty_ids_naming_the_first() {
    let mut input = minimal();
    input.technicians.push(technician("ana", &[]));
    let e = validate(&input).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(
        (e.0[0].path.as_str(), e.0[0].code),
        ("$.technicians[1].id", "duplicate_id")
    );
    assert!(
        e.0[0].message.contains("$.technicians[0]"),
        "{}",
        e.0[0].message
    );

    rejects(|p| p.jobs.push(job("j1")), "$.jobs[1].id", "duplicate_id");
    rejects(|p| p.jobs[0].id = " ".into(), "$.jobs[0].id", "empty_id");
    rejects(|p| p.technicians.clear(), "$.technicians", "no_technicians");
}

#[test]
fn rejects_coordinates_out_of_range() {
    rejects(
        |p| p.jobs[0].place.lat = 91.0,
        "$.jobs[0].place.lat",
        "coordinates_out_of_range",
    );
    rejects(
        |p| p.technicians[0].home.lon = f64::NAN,
        "$.technicians[0].home.lon",
        "coordinates_out_of_range",
    );
    rejects(
        |p| {
            p.technicians[0].shifts[0].end_place = Some(Place {
                lat: 0.0,
                lon: -180.5,
                address: None,
                location_id: None,
            })
        },
        "$.technicians[0].shifts[0].end_place.lon",
        "coordinates_out_of_range",
    );
}

#[test]
fn rejects_bad_shifts() {
    rejects(
        |p| p.technicians[0].shifts.clear(),
        "$.technicians[0].shifts",
        "no_shift",
    );
    rejects(
        |p| {
            p.technicians[0]
                .shifts
                .push(shift("2026-03-28", "18:00", "20:00"))
        },
        "$.technicians[0].shifts[1].date",
        "duplicate_shift_date",
    );
    rejects(
        |p| p.technicians[0].shifts[0].end = time("08:00"),
        "$.technicians[0].shifts[0].end",
        "shift_ends_before_start",
    );
    rejects(
        |p| p.technicians[0].shifts[0].date = date("1800-01-01"),
        "$.technicians[0].shifts[0].date",
        "invalid_date",
    );
}

#[test]
fn rejects_bad_break_rules() {
    let with_break = |duration: u32, from: &str, to: &str| {
        let b = BreakRule {
            duration_minutes: duration,
            earliest_start: time(from),
            latest_end: time(to),
        };
        move |p: &mut ProblemInput| p.technicians[0].shifts[0].break_rule = Some(b)
    };
    let base = "$.technicians[0].shifts[0].break_rule";
    rejects(
        with_break(0, "12:00", "14:00"),
        &format!("{base}.duration_minutes"),
        "invalid_break",
    );
    rejects(
        with_break(30, "14:00", "12:00"),
        &format!("{base}.latest_end"),
        "invalid_break",
    );
    rejects(
        with_break(150, "12:00", "14:00"),
        &format!("{base}.duration_minutes"),
        "invalid_break",
    );
    rejects(with_break(30, "16:30", "17:30"), base, "invalid_break");
    assert_eq!(
        errors(&{
            let mut p = minimal();
            with_break(45, "11:30", "14:00")(&mut p);
            p
        }),
        vec![]
    );
}

#[test]
fn rejects_bad_job_fields() {
    rejects(
        |p| p.jobs[0].windows[0].end = instant("2026-03-28T09:00:00Z"),
        "$.jobs[0].windows[0].end",
        "window_ends_before_start",
    );
    rejects(
        |p| p.jobs[0].windows.clear(),
        "$.jobs[0].windows",
        "no_window",
    );
    rejects(
        |p| p.jobs[0].priority = 0,
        "$.jobs[0].priority",
        "invalid_priority",
    );
    rejects(
        |p| p.jobs[0].priority = 11,
        "$.jobs[0].priority",
        "invalid_priority",
    );
    rejects(
        |p| p.jobs[0].duration_minutes = 0,
        "$.jobs[0].duration_minutes",
        "invalid_duration",
    );
    rejects(
        |p| p.jobs[0].duration_minutes = 24 * 60 + 1,
        "$.jobs[0].duration_minutes",
        "invalid_duration",
    );
    rejects(
        |p| {
            p.jobs[0].duration_by_level.insert(6, 30);
        },
        "$.jobs[0].duration_by_level[\"6\"]",
        "invalid_level",
    );
    rejects(
        |p| {
            p.technicians[0].skills.insert("fiber".into(), 6);
        },
        "$.technicians[0].skills.fiber",
        "invalid_level",
    );
    rejects(
        |p| {
            p.jobs[0].required_skills.insert("pppoe".into(), 0);
        },
        "$.jobs[0].required_skills.pppoe",
        "invalid_level",
    );
}

#[test]
fn rejects_skills_missing_from_the_catalogue() {
    rejects(
        |p| {
            p.jobs[0].required_skills.insert("fibre optics".into(), 1);
        },
        "$.jobs[0].required_skills[\"fibre optics\"]",
        "unknown_skill",
    );
    rejects(
        |p| {
            p.technicians[0].skills.insert("iptv".into(), 2);
        },
        "$.technicians[0].skills.iptv",
        "unknown_skill",
    );
    // Without a catalogue any name goes.
    let mut input = minimal();
    input.skills = None;
    input.jobs[0].required_skills.insert("iptv".into(), 1);
    assert_eq!(errors(&input), vec![]);
}

#[test]
fn rejects_references_to_unknown_technicians_and_jobs() {
    rejects(
        |p| p.jobs[0].pinned_technician = Some("zé".into()),
        "$.jobs[0].pinned_technician",
        "unknown_technician",
    );
    rejects(
        |p| p.jobs[0].preferred_technician = Some("zé".into()),
        "$.jobs[0].preferred_technician",
        "unknown_technician",
    );
    rejects(
        |p| p.jobs[0].same_technician_as = Some("j9".into()),
        "$.jobs[0].same_technician_as",
        "unknown_job",
    );
    rejects(
        |p| p.jobs[0].after_job = Some("j9".into()),
        "$.jobs[0].after_job",
        "unknown_job",
    );
}

#[test]
fn job_relations_compile_and_bad_ones_are_refused() {
    let mut input = minimal();
    input.jobs.push(job("j2"));
    input.jobs.push(job("j3"));
    input.jobs[1].same_technician_as = Some("j1".into());
    input.jobs[1].after_job = Some("j1".into());
    let c = compiled(&input);
    let rules = c.problem.rules().unwrap();
    assert_eq!(rules.jobs[1].same_group_as, vec![0]);
    assert_eq!(rules.jobs[0].same_group_as, vec![1], "symmetric");
    assert_eq!(rules.jobs[1].after, vec![0]);
    assert_eq!(c.problem.successors(0), &[1]);
    assert!(c.problem.has_relations());

    // A job after itself, and a loop j2 → j3 → j2.
    input.jobs[0].after_job = Some("j1".into());
    input.jobs[1].after_job = Some("j3".into());
    input.jobs[2].after_job = Some("j2".into());
    let e = validate(&input).unwrap_err();
    let found: Vec<_> = e.iter().map(|e| (e.path.as_str(), e.code)).collect();
    assert_eq!(
        found,
        vec![
            ("$.jobs[0].after_job", "self_relation"),
            ("$.jobs[1].after_job", "relation_cycle"),
        ]
    );
}

#[test]
fn rejects_a_pinned_start_outside_every_window() {
    rejects(
        |p| p.jobs[0].pinned_start = Some(instant("2026-03-28T12:00:01Z")),
        "$.jobs[0].pinned_start",
        "pinned_start_outside_windows",
    );
    // On the window's edge is inside.
    assert_eq!(
        errors(&{
            let mut p = minimal();
            p.jobs[0].pinned_start = Some(instant("2026-03-28T13:00:00+01:00"));
            p
        }),
        vec![]
    );
}

#[test]
fn rejects_bad_territories() {
    let set = |t: Territory| move |p: &mut ProblemInput| p.technicians[0].territory = Some(t);
    let base = "$.technicians[0].territory.coordinates";
    let mut open = square(-9.15, 38.73, 0.1);
    open[0].pop();
    rejects(
        set(Territory::Polygon { coordinates: open }),
        &format!("{base}[0]"),
        "invalid_territory",
    );
    let mut open = square(-9.15, 38.73, 0.1);
    open[0][4] = [0.0, 0.0];
    rejects(
        set(Territory::Polygon { coordinates: open }),
        &format!("{base}[0]"),
        "invalid_territory",
    );
    let mut far = square(-9.15, 38.73, 0.1);
    far[0][2] = [200.0, 38.0];
    rejects(
        set(Territory::Polygon { coordinates: far }),
        &format!("{base}[0][2]"),
        "invalid_territory",
    );
    let inner = square(-9.15, 38.73, 0.1);
    let mut outer = square(-9.15, 38.73, 1.0);
    outer.push(vec![[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]);
    rejects(
        set(Territory::MultiPolygon {
            coordinates: vec![inner, outer],
        }),
        &format!("{base}[1][1]"),
        "invalid_territory",
    );
    rejects(
        set(Territory::MultiPolygon {
            coordinates: vec![],
        }),
        base,
        "invalid_territory",
    );
}

#[test]
fn rejects_self_crossing_and_oversized_territories() {
    let set = |t: Territory| move |p: &mut ProblemInput| p.technicians[0].territory = Some(t);
    let base = "$.technicians[0].territory.coordinates";
    // A bow tie: the outline crosses itself.
    let bow_tie = vec![vec![
        [-9.2, 38.7],
        [-9.1, 38.8],
        [-9.1, 38.7],
        [-9.2, 38.8],
        [-9.2, 38.7],
    ]];
    rejects(
        set(Territory::Polygon {
            coordinates: bow_tie,
        }),
        &format!("{base}[0]"),
        "invalid_territory",
    );
    // A circle of 20,000 positions.
    let n = 20_000;
    let mut ring: Vec<[f64; 2]> = (0..n)
        .map(|k| {
            let a = k as f64 / n as f64 * std::f64::consts::TAU;
            [-9.15 + 0.1 * a.cos(), 38.73 + 0.1 * a.sin()]
        })
        .collect();
    ring.push(ring[0]);
    rejects(
        set(Territory::Polygon {
            coordinates: vec![ring],
        }),
        base,
        "too_many_positions",
    );
    // A plain square is still fine.
    let mut input = minimal();
    set(Territory::Polygon {
        coordinates: square(-9.15, 38.73, 0.1),
    })(&mut input);
    assert_eq!(errors(&input), vec![]);
}

#[test]
fn rejects_negative_or_non_finite_money() {
    rejects(
        |p| p.technicians[0].cost_per_hour = -1.0,
        "$.technicians[0].cost_per_hour",
        "invalid_number",
    );
    rejects(
        |p| p.technicians[0].shifts[0].overtime_cost_per_hour = f64::INFINITY,
        "$.technicians[0].shifts[0].overtime_cost_per_hour",
        "invalid_number",
    );
    rejects(
        |p| p.objective.not_preferred = f64::NAN,
        "$.objective.not_preferred",
        "invalid_number",
    );
}

#[test]
fn rejects_travel_options_before_building_matrices() {
    rejects(
        |p| {
            p.travel = serde_json::from_value(json!({"mode": "great_circle", "detour_factor": 0.9}))
                .unwrap()
        },
        "$.travel.detour_factor",
        "invalid_number",
    );
    rejects(
        |p| {
            p.travel =
                serde_json::from_value(json!({"mode": "great_circle", "speeds_kmh": {"urban": 0}}))
                    .unwrap()
        },
        "$.travel.speeds_kmh.urban",
        "invalid_number",
    );
    let matrix = |locations: &[&str], rows: serde_json::Value| {
        let travel: TravelOptions = serde_json::from_value(json!({
            "mode": "matrix", "locations": locations, "durations_s": rows, "distances_m": rows
        }))
        .unwrap();
        move |p: &mut ProblemInput| {
            p.technicians[0].home.location_id = Some("depot".into());
            p.jobs[0].place.location_id = Some("client".into());
            p.travel = travel;
        }
    };
    let e = errors(&{
        let mut p = minimal();
        matrix(&["depot", "client"], json!([[0, 1], [1]]))(&mut p);
        p
    });
    assert_eq!(
        e,
        vec![
            ("$.travel.durations_s[1]".to_owned(), "matrix_shape"),
            ("$.travel.distances_m[1]".to_owned(), "matrix_shape")
        ]
    );
    let e = errors(&{
        let mut p = minimal();
        matrix(
            &["depot", "client", "depot"],
            json!([[0, 1, 0], [1, 0, 1], [0, 1, 0]]),
        )(&mut p);
        p
    });
    assert_eq!(
        e,
        vec![("$.travel.locations[2]".to_owned(), "duplicate_location")]
    );
    rejects(
        |p| {
            matrix(&["depot", "client"], json!([[0, 1], [1, 0]]))(p);
            p.jobs[0].place.location_id = Some("elsewhere".into());
        },
        "$.jobs[0].place.location_id",
        "unknown_location",
    );
    rejects(
        |p| {
            matrix(&["depot", "client"], json!([[0, 1], [1, 0]]))(p);
            p.technicians[0].home.location_id = None;
        },
        "$.technicians[0].home.location_id",
        "missing_location",
    );
}

#[test]
fn reports_every_problem_at_once() {
    let mut input = minimal();
    input.version = 3;
    input.time_zone = "Lisbon".into();
    input.technicians[0].shifts[0].end = time("07:00");
    input.jobs[0].priority = 12;
    input.jobs[0]
        .windows
        .push(window("2026-03-28T15:00:00Z", "2026-03-28T14:00:00Z"));
    input.jobs.push(job("j1"));
    input.objective.travel_and_work = -1.0;
    let e = validate(&input).unwrap_err();
    let codes: Vec<_> = e.iter().map(|e| (e.path.as_str(), e.code)).collect();
    assert_eq!(
        codes,
        vec![
            ("$.version", "unsupported_version"),
            ("$.time_zone", "unknown_time_zone"),
            ("$.jobs[1].id", "duplicate_id"),
            ("$.technicians[0].shifts[0].end", "shift_ends_before_start"),
            ("$.jobs[0].windows[1].end", "window_ends_before_start"),
            ("$.jobs[0].priority", "invalid_priority"),
            ("$.objective.travel_and_work", "invalid_number"),
        ]
    );
    // Display lists them all; JSON is a list of {path, code, message}.
    let text = e.to_string();
    assert!(text.starts_with("7 problems"), "{text}");
    assert!(text.contains("$.jobs[0].priority"));
    let value = serde_json::to_value(&e).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 7);
    assert_eq!(value[0]["code"], "unsupported_version");
    assert_eq!(value[0]["path"], "$.version");
    // compile reports the same, without building anything.
    let ValidationErrors(again) = compile(&input, &HashMap::new()).unwrap_err();
    assert_eq!(again, e.0);
}

#[test]
fn never_panics_on_hostile_numbers() {
    let mut input = minimal();
    input.technicians[0].home = Place {
        lat: f64::NAN,
        lon: f64::INFINITY,
        address: None,
        location_id: None,
    };
    input.technicians[0].cost_per_km = f64::NEG_INFINITY;
    input.technicians[0].territory = Some(Territory::Polygon {
        coordinates: vec![vec![]],
    });
    input.jobs[0].windows[0].start = DateTime::<Utc>::MIN_UTC.fixed_offset();
    input.jobs[0].windows[0].end = DateTime::<Utc>::MAX_UTC.fixed_offset();
    input.jobs[0].sla_due = Some(DateTime::<Utc>::MAX_UTC.fixed_offset());
    input.jobs[0].equipment = Equipment {
        deliver: u32::MAX,
        collect: u32::MAX,
    };
    input.technicians[0].shifts[0].overtime_minutes = u32::MAX;
    input.technicians[0].max_jobs_per_day = Some(u32::MAX);
    input.technicians[0].van_capacity = Some(u32::MAX);
    let e = errors(&input);
    assert_eq!(e.len(), 5, "{e:?}");
    // Fix what validation found; the extreme times and counts must then compile.
    input.technicians[0].home = minimal().technicians[0].home.clone();
    input.technicians[0].cost_per_km = 0.0;
    input.technicians[0].territory = None;
    input.technicians[0].shifts[0].overtime_minutes = 0;
    let c = compiled(&input);
    assert_eq!(c.job_blockers, vec![None]);
    assert!(c.to_local(Duration::MAX).timestamp() > 0);
}

// ---------------------------------------------------------------------------------
// Compilation: times

#[test]
fn compiles_the_minimal_problem_with_its_rates() {
    let c = compiled(&minimal());
    assert_eq!(c.epoch, Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap());
    assert_eq!(c.cost_units_per_currency, COST_UNITS_PER_CURRENCY);
    assert_eq!(
        c.vehicles,
        vec![VehicleRef {
            technician: 0,
            shift: 0
        }]
    );
    assert_eq!(c.locations.len(), 2);
    let vt = &c.problem.vehicle_types()[0];
    assert_eq!(vt.shift, TimeWindow::new(Duration(8 * H), Duration(17 * H)));
    assert_eq!(
        (vt.start, vt.end, vt.count, vt.fixed_cost),
        (0, 0, Some(1), 0)
    );
    assert_eq!(vt.cost_per_duration, 556); // 20/h = 0.005556/s
    assert_eq!(vt.cost_per_distance, 50); // 0.5/km
    assert_eq!(vt.capacity.get(), 1_000_000);
    let job = &c.problem.jobs()[0];
    assert_eq!(job.location, 1);
    assert_eq!(job.service, Duration(H));
    assert_eq!(
        job.windows,
        vec![TimeWindow::new(Duration(9 * H), Duration(12 * H))]
    );
    let rules = c.problem.rules().unwrap();
    let r = &rules.jobs[0];
    assert_eq!(
        r.unassigned_cost,
        Some(Cost(5 * 100_000 * COST_UNITS_PER_CURRENCY))
    );
    assert_eq!(r.allowed, None);
    assert_eq!(r.lateness_cost, 166_667); // 100 per minute
    assert_eq!((r.change_cost, r.not_preferred_cost), (5_000_000, 500_000));
    assert!(r.previous.is_empty() && r.preferred.is_empty() && r.service_on.is_empty());
    assert_eq!(rules.vehicles[0].overtime_cost, 3_333); // 2 per minute
    assert_eq!(rules.vehicles[0].regular_end, Some(Duration(17 * H)));
    assert_eq!(rules.balance_per_hour_squared, 50_000);
    assert_eq!(c.job_blockers, vec![None]);
    assert!((c.currency(Cost(123_450)) - 1.2345).abs() < 1e-12);
}

#[test]
fn keeps_local_shift_times_across_the_spring_forward_change() {
    let mut input = minimal();
    input.technicians[0]
        .shifts
        .push(shift("2026-03-29", "08:00", "17:00"));
    let c = compiled(&input);
    let [first, second] = [0, 1].map(|v| c.problem.vehicle_types()[v].shift);
    let utc = |t: Duration| c.to_local(t).with_timezone(&Utc);
    assert_eq!(
        utc(first.start),
        Utc.with_ymd_and_hms(2026, 3, 28, 8, 0, 0).unwrap()
    );
    assert_eq!(
        utc(second.start),
        Utc.with_ymd_and_hms(2026, 3, 29, 7, 0, 0).unwrap()
    );
    assert_eq!(first.end - first.start, Duration(9 * H));
    assert_eq!(second.end - second.start, Duration(9 * H));
    assert_eq!(second.start, Duration(24 * H + 7 * H));
    assert_eq!(c.to_local(second.start).hour(), 8);
    assert_eq!(c.to_local(second.end).hour(), 17);
}

#[test]
fn refuses_shift_times_in_the_spring_forward_gap_and_moves_other_times_to_its_end() {
    let lisbon = chrono_tz::Europe::Lisbon;
    let at = |d: &str, t: &str| local_instant(lisbon, date(d).and_time(time(t)));
    // 01:00–02:00 local does not exist on 29 March 2026: 01:30 is 01:00 UTC (02:00 WEST).
    assert_eq!(
        at("2026-03-29", "01:30"),
        Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
    );
    assert_eq!(
        at("2026-03-29", "01:00"),
        Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
    );
    assert_eq!(
        at("2026-03-29", "00:59"),
        Utc.with_ymd_and_hms(2026, 3, 29, 0, 59, 0).unwrap()
    );
    // 01:00–02:00 local happens twice on 25 October 2026: the earlier one (WEST) is used.
    assert_eq!(
        at("2026-10-25", "01:30"),
        Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap()
    );
    // Samoa skipped 30 December 2011 (UTC-10 to UTC+14 at 10:00 UTC).
    assert_eq!(
        local_instant(
            chrono_tz::Pacific::Apia,
            date("2011-12-30").and_time(time("08:00"))
        ),
        Utc.with_ymd_and_hms(2011, 12, 30, 10, 0, 0).unwrap()
    );
    // São Paulo has no DST any more; a half-hour zone keeps its minutes.
    assert_eq!(
        local_instant(
            chrono_tz::America::Sao_Paulo,
            date("2026-03-29").and_time(time("08:00"))
        ),
        Utc.with_ymd_and_hms(2026, 3, 29, 11, 0, 0).unwrap()
    );
    assert_eq!(
        local_instant(
            chrono_tz::Asia::Kolkata,
            date("2026-03-29").and_time(time("08:00"))
        ),
        Utc.with_ymd_and_hms(2026, 3, 29, 2, 30, 0).unwrap()
    );

    // A shift that starts or ends in the gap is refused, naming the field (it was
    // moved to the gap's end silently); one at the earlier 01:30 of October is fine.
    let mut input = minimal();
    input.technicians[0].shifts = vec![shift("2026-03-29", "01:30", "10:00")];
    assert_eq!(
        errors(&input),
        vec![(
            "$.technicians[0].shifts[0].start".to_owned(),
            "nonexistent_local_time"
        )]
    );
    let refusal = validate(&input).unwrap_err().0.remove(0).message;
    assert!(refusal.contains("resume at 02:00"), "{refusal}");
    input.technicians[0].shifts = vec![shift("2026-03-28", "20:00", "23:59")];
    assert_eq!(errors(&input), vec![]);
    input.technicians[0].shifts = vec![shift("2026-10-25", "01:30", "10:00")];
    input.jobs[0].windows = vec![window("2026-10-25T09:00:00Z", "2026-10-25T10:00:00Z")];
    assert_eq!(errors(&input), vec![]);

    // A break whose bounds fall in the gap keeps local times (the gap's end).
    let mut input = minimal();
    input.technicians[0].shifts = vec![shift("2026-03-29", "00:30", "10:00")];
    input.technicians[0].shifts[0].break_rule = Some(BreakRule {
        duration_minutes: 30,
        earliest_start: time("01:45"),
        latest_end: time("05:00"),
    });
    input.jobs[0].windows = vec![window("2026-03-29T03:00:00Z", "2026-03-29T04:00:00Z")];
    let c = compiled(&input);
    assert_eq!(c.epoch, Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap());
    let vt = &c.problem.vehicle_types()[0];
    assert_eq!(vt.shift, TimeWindow::new(Duration(H / 2), Duration(9 * H)));
    let b = c.problem.rules().unwrap().vehicles[0].break_spec.unwrap();
    // 01:45 → 01:00 UTC; 05:00 − 30 min = 04:30 WEST = 03:30 UTC.
    assert_eq!(
        b.start,
        TimeWindow::new(Duration(H), Duration(3 * H + 1800))
    );
    assert_eq!(b.duration, Duration(1800));
}

#[test]
fn converts_job_windows_with_offsets_then_sorts_and_merges_them() {
    let mut input = minimal();
    input.jobs[0].windows = vec![
        window("2026-03-28T13:00:00-03:00", "2026-03-28T14:00:00-03:00"), // 16–17 UTC
        window("2026-03-28T10:00:00-03:00", "2026-03-28T11:00:00-03:00"), // 13–14 UTC
        window("2026-03-28T14:30:00Z", "2026-03-28T15:00:00Z"),           // touches the next
        window("2026-03-28T16:00:00+01:00", "2026-03-28T16:30:00+01:00"), // 15:00–15:30 UTC
        window("2026-03-28T13:30:00Z", "2026-03-28T13:45:00Z"),           // inside 13–14
    ];
    input.jobs[0].sla_due = Some(instant("2026-03-28T12:00:00-03:00"));
    input.jobs[0].priority = 9;
    let c = compiled(&input);
    assert_eq!(
        c.problem.jobs()[0].windows,
        vec![
            TimeWindow::new(Duration(13 * H), Duration(14 * H)),
            TimeWindow::new(Duration(14 * H + 1800), Duration(15 * H + 1800)),
            TimeWindow::new(Duration(16 * H), Duration(17 * H)),
        ]
    );
    let r = &c.problem.rules().unwrap().jobs[0];
    assert_eq!(r.due, Some(Duration(15 * H)));
    assert_eq!(
        r.unassigned_cost,
        Some(Cost(9 * 100_000 * COST_UNITS_PER_CURRENCY))
    );
    assert_eq!(
        c.from_instant(instant("2026-03-28T01:00:00+01:00")),
        Duration(0)
    );
    assert_eq!(
        c.to_local(Duration(15 * H)).to_rfc3339(),
        "2026-03-28T15:00:00+00:00"
    );
}

#[test]
fn replaces_windows_by_a_pinned_start() {
    let mut input = minimal();
    input.jobs[0].pinned_start = Some(instant("2026-03-28T10:30:00+00:00"));
    let c = compiled(&input);
    let pin = Duration(10 * H + 1800);
    assert_eq!(c.problem.jobs()[0].windows, vec![TimeWindow::new(pin, pin)]);
    assert_eq!(c.job_blockers, vec![None]);
}

#[test]
fn compiles_overtime_breaks_and_job_limits() {
    let mut input = minimal();
    let s = &mut input.technicians[0].shifts[0];
    s.overtime_minutes = 60;
    s.overtime_cost_per_hour = 36.0;
    s.break_rule = Some(BreakRule {
        duration_minutes: 45,
        earliest_start: time("12:00"),
        latest_end: time("14:00"),
    });
    input.technicians[0].max_jobs_per_day = Some(6);
    let c = compiled(&input);
    assert_eq!(
        c.problem.vehicle_types()[0].shift,
        TimeWindow::new(Duration(8 * H), Duration(18 * H))
    );
    let v = &c.problem.rules().unwrap().vehicles[0];
    assert_eq!(v.regular_end, Some(Duration(17 * H)));
    // 36/h = 0.01/s plus 2/min = 0.0333/s.
    assert_eq!(v.overtime_cost, 1_000 + 3_333);
    assert_eq!(v.max_jobs, Some(6));
    let b = v.break_spec.unwrap();
    assert_eq!(
        b.start,
        TimeWindow::new(Duration(12 * H), Duration(13 * H + 15 * 60))
    );
    assert_eq!(b.duration, Duration(45 * 60));
}

#[test]
fn shares_locations_between_identical_places() {
    let mut input = minimal();
    input.technicians.push(technician("bob", &[("fiber", 2)]));
    input.technicians[1].shifts[0].end_place = Some(input.jobs[0].place.clone());
    input.jobs.push(job("j2"));
    input.jobs[1].place = input.technicians[0].home.clone();
    let c = compiled(&input);
    // ana's home (= bob's home = j2's place) and j1's place (= bob's end place).
    assert_eq!(c.locations.len(), 2);
    let vts = c.problem.vehicle_types();
    assert_eq!((vts[1].start, vts[1].end), (0, 1));
    assert_eq!(c.problem.jobs()[1].location, 0);
    assert_eq!(c.problem.distance(0, 0).get(), 0);
    assert!(c.problem.distance(0, 1).get() > 1000);
}

#[test]
fn uses_the_users_matrix_by_location_id() {
    let mut input = minimal();
    input.technicians[0].home.location_id = Some("depot".into());
    input.jobs[0].place.location_id = Some("client".into());
    input.travel = serde_json::from_value(json!({
        "mode": "matrix",
        "locations": ["client", "depot"],
        "durations_s": [[0, 600], [540, 0]],
        "distances_m": [[0, 7000], [6500, 0]]
    }))
    .unwrap();
    let c = compiled(&input);
    assert_eq!(c.problem.duration(0, 1), Duration(540));
    assert_eq!(c.problem.distance(1, 0).get(), 7000);
}

#[test]
fn reports_travel_failures_at_the_travel_options() {
    let mut input = minimal();
    input.travel =
        serde_json::from_value(json!({"mode": "osrm", "url": "http://127.0.0.1:9"})).unwrap();
    let e = compile(&input, &HashMap::new()).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(
        (e.0[0].path.as_str(), e.0[0].code),
        ("$.travel.url", "osrm_unreachable")
    );
}

// ---------------------------------------------------------------------------------
// Compilation: who may do what

/// ana (fiber 3), bob (fiber 1), carla (fiber 5, territory far away), dani (no fiber),
/// each with one shift on 28 March.
fn team() -> ProblemInput {
    let mut input = minimal();
    input.technicians = vec![
        technician("ana", &[("fiber", 3)]),
        technician("bob", &[("fiber", 1), ("pppoe", 2)]),
        technician("carla", &[("fiber", 5)]),
        technician("dani", &[("pppoe", 4)]),
    ];
    input.technicians[2].territory = Some(Territory::Polygon {
        coordinates: square(-8.61, 41.15, 0.2), // Porto
    });
    input
}

#[test]
fn allows_only_technicians_with_the_skills_at_the_levels() {
    let mut input = team();
    input.jobs.push(job("pppoe"));
    input.jobs[1].required_skills = [("pppoe".to_owned(), 2)].into();
    input.jobs.push(job("anything"));
    input.jobs[2].required_skills.clear();
    let c = compiled(&input);
    assert_eq!(allowed(&c, 0), Some(vec![0])); // fiber 2: ana (carla is in Porto)
    assert_eq!(allowed(&c, 1), Some(vec![1, 3]));
    assert_eq!(allowed(&c, 2), Some(vec![0, 1, 3]));
}

#[test]
fn allows_technicians_whose_territory_covers_the_place() {
    let mut input = team();
    input.jobs[0].place = Place {
        lat: 41.15,
        lon: -8.61,
        address: None,
        location_id: None,
    };
    let c = compiled(&input);
    assert_eq!(allowed(&c, 0), Some(vec![0, 2]));
    // A MultiPolygon: Lisbon's square as the second polygon; a hole around the job.
    let mut input = team();
    let mut lisbon = square(-9.15, 38.73, 0.2);
    input.technicians[2].territory = Some(Territory::MultiPolygon {
        coordinates: vec![square(-8.61, 41.15, 0.2), lisbon.clone()],
    });
    assert_eq!(allowed(&compiled(&input), 0), Some(vec![0, 2]));
    lisbon.push(square(-9.15, 38.73, 0.01).remove(0));
    input.technicians[2].territory = Some(Territory::Polygon {
        coordinates: lisbon,
    });
    assert_eq!(allowed(&compiled(&input), 0), Some(vec![0]));
    // On the boundary counts as inside.
    let edge = vec![vec![
        [-9.2, 38.73],
        [-9.1, 38.73],
        [-9.1, 38.8],
        [-9.2, 38.8],
        [-9.2, 38.73],
    ]];
    input.technicians[2].territory = Some(Territory::Polygon { coordinates: edge });
    assert_eq!(allowed(&compiled(&input), 0), Some(vec![0, 2]));
}

#[test]
fn allows_only_the_pinned_technician() {
    let mut input = team();
    input.jobs[0].required_skills.clear();
    input.jobs[0].pinned_technician = Some("dani".into());
    let c = compiled(&input);
    assert_eq!(allowed(&c, 0), Some(vec![3]));
    assert_eq!(c.job_blockers, vec![None]);
}

#[test]
fn allows_only_shifts_in_which_the_visit_fits_a_window() {
    let mut input = minimal();
    input.technicians[0].shifts = vec![
        shift("2026-03-28", "08:00", "17:00"),
        shift("2026-03-30", "08:00", "17:00"),
        shift("2026-03-31", "08:00", "17:00"),
    ];
    input.technicians.push(technician("bob", &[("fiber", 2)]));
    input.technicians[1].shifts = vec![shift("2026-03-30", "13:00", "17:00")];
    // Monday 30 March is on WEST (UTC+1): 08:00–12:00 local.
    input.jobs[0].windows = vec![window("2026-03-30T07:00:00Z", "2026-03-30T11:00:00Z")];
    input.jobs.push(job("late"));
    // Starts 16:30 local at the earliest: 60 minutes do not fit before 17:00.
    input.jobs[1].windows = vec![window("2026-03-31T15:30:00Z", "2026-03-31T20:00:00Z")];
    let c = compiled(&input);
    assert_eq!(allowed(&c, 0), Some(vec![1]));
    assert_eq!(allowed(&c, 1), Some(vec![]));
    assert_eq!(c.job_blockers, vec![None, Some(Blocker::NoShiftThatDay)]);
    // With an hour of overtime, it fits.
    input.technicians[0].shifts[2].overtime_minutes = 60;
    assert_eq!(allowed(&compiled(&input), 1), Some(vec![2]));
}

#[test]
fn allows_only_vans_that_hold_the_equipment() {
    let mut input = team();
    input.technicians[0].van_capacity = Some(2);
    input.technicians[1].van_capacity = Some(5);
    for (id, deliver, collect) in [
        ("two", 2, 0),
        ("three", 3, 0),
        ("back", 0, 3),
        ("six", 6, 1),
    ] {
        let mut j = job(id);
        j.required_skills.clear();
        j.equipment = Equipment { deliver, collect };
        input.jobs.push(j);
    }
    let c = compiled(&input);
    assert_eq!(allowed(&c, 1), Some(vec![0, 1, 3]));
    assert_eq!(allowed(&c, 2), Some(vec![1, 3]));
    assert_eq!(allowed(&c, 3), Some(vec![1, 3]));
    assert_eq!(allowed(&c, 4), Some(vec![3]));
    assert_eq!(c.problem.jobs()[3].demand.get(), 0);
    assert_eq!(c.problem.rules().unwrap().jobs[3].pickup.get(), 3);
    assert_eq!(c.problem.jobs()[1].demand.get(), 2);
    assert_eq!(c.problem.vehicle_types()[0].capacity.get(), 2);
}

#[test]
fn names_the_furthest_blocker_for_each_impossible_job() {
    let mut input = team();
    input.technicians[3].van_capacity = Some(1);
    let mut add = |id: &str, f: &dyn Fn(&mut JobInput)| {
        let mut j = job(id);
        f(&mut j);
        input.jobs.push(j);
    };
    add("expert pppoe", &|j| {
        j.required_skills = [("pppoe".to_owned(), 5)].into()
    });
    add("fiber in Faro", &|j| {
        j.required_skills = [("fiber".to_owned(), 4)].into();
        j.place = Place {
            lat: 37.02,
            lon: -7.93,
            address: None,
            location_id: None,
        };
    });
    add("sunday", &|j| {
        j.windows = vec![window("2026-03-29T09:00:00Z", "2026-03-29T12:00:00Z")]
    });
    add("many modems", &|j| {
        j.required_skills = [("pppoe".to_owned(), 3)].into();
        j.equipment.deliver = 2;
    });
    add("pinned to bob", &|j| {
        j.pinned_technician = Some("bob".into())
    });
    add("pinned evening", &|j| {
        j.required_skills.clear();
        j.windows = vec![window("2026-03-28T16:00:00Z", "2026-03-28T20:00:00Z")];
        j.pinned_start = Some(instant("2026-03-28T16:30:00Z"));
    });
    add("pinned, skills nobody has", &|j| {
        j.required_skills = [("pppoe".to_owned(), 5)].into();
        j.pinned_technician = Some("dani".into());
    });
    let c = compiled(&input);
    assert_eq!(
        c.job_blockers,
        vec![
            None,
            Some(Blocker::NoSkilledTechnician),
            Some(Blocker::OutsideTerritory),
            Some(Blocker::NoShiftThatDay),
            Some(Blocker::CapacityExceeded),
            Some(Blocker::PinnedConflict),
            Some(Blocker::PinnedConflict),
            Some(Blocker::PinnedConflict),
        ]
    );
    for (j, b) in c.job_blockers.iter().enumerate() {
        assert_eq!(b.is_some(), allowed(&c, j) == Some(vec![]), "job {j}");
    }
    assert_eq!(Blocker::NoShiftThatDay.code(), "no_shift_that_day");
    assert_eq!(
        serde_json::to_value(Blocker::PinnedConflict).unwrap(),
        json!("pinned_conflict")
    );
}

#[test]
fn sets_service_time_by_the_level_in_the_first_required_skill() {
    let mut input = team();
    input.technicians[2].territory = None;
    let j = &mut input.jobs[0];
    j.duration_minutes = 120;
    j.duration_by_level = [(2, 90), (4, 45)].into();
    // "fiber" comes before "pppoe": its level decides.
    j.required_skills = [("pppoe".to_owned(), 1), ("fiber".to_owned(), 1)].into();
    input.technicians[0].skills.insert("pppoe".into(), 1); // ana fiber 3
    input.technicians[2].skills.insert("pppoe".into(), 1); // carla fiber 5
    let c = compiled(&input);
    assert_eq!(allowed(&c, 0), Some(vec![0, 1, 2]));
    let r = &c.problem.rules().unwrap().jobs[0];
    assert_eq!(
        r.service_on,
        vec![(0, Duration(90 * 60)), (2, Duration(45 * 60))]
    );
    assert_eq!(c.problem.jobs()[0].service, Duration(120 * 60));
    assert_eq!(c.problem.service_on(0, 1), Duration(120 * 60)); // bob, fiber 1
    assert_eq!(c.problem.service_on(0, 2), Duration(45 * 60));
}

#[test]
fn links_previous_assignments_and_preferred_technicians() {
    let mut input = team();
    input.technicians[1]
        .shifts
        .push(shift("2026-03-29", "08:00", "17:00"));
    input.jobs[0].required_skills.clear();
    input.jobs[0].preferred_technician = Some("bob".into());
    input.jobs.push(job("j2"));
    input.jobs.push(job("j3"));
    let previous: HashMap<String, PreviousAssignment> = [
        ("j1", "bob", "2026-03-29"),
        ("j2", "bob", "2026-03-27"), // bob does not work that day now
        ("j3", "ana", "2026-03-28"),
    ]
    .into_iter()
    .map(|(j, t, d)| {
        (
            j.to_owned(),
            PreviousAssignment {
                technician: t.into(),
                date: date(d),
            },
        )
    })
    .collect();
    let c = compile(&input, &previous).unwrap();
    assert_eq!(
        c.vehicles,
        vec![
            VehicleRef {
                technician: 0,
                shift: 0
            },
            VehicleRef {
                technician: 1,
                shift: 0
            },
            VehicleRef {
                technician: 1,
                shift: 1
            },
            VehicleRef {
                technician: 2,
                shift: 0
            },
            VehicleRef {
                technician: 3,
                shift: 0
            },
        ]
    );
    let rules = &c.problem.rules().unwrap().jobs;
    assert_eq!(rules[0].previous, vec![2]);
    assert_eq!(rules[0].preferred, vec![1, 2]);
    assert!(rules[1].previous.is_empty());
    assert_eq!(rules[2].previous, vec![0]);
    assert!(rules[2].preferred.is_empty());
    assert_eq!(c.vehicle_type_on(&input, 1, date("2026-03-29")), Some(2));
}

#[test]
fn compiled_problems_solve_and_pass_the_checker() {
    let mut input = team();
    input.technicians[0].shifts[0].break_rule = Some(BreakRule {
        duration_minutes: 30,
        earliest_start: time("12:00"),
        latest_end: time("14:00"),
    });
    for (k, (lat, lon)) in [
        (38.74, -9.16),
        (38.70, -9.13),
        (38.75, -9.12),
        (38.71, -9.18),
    ]
    .into_iter()
    .enumerate()
    {
        let mut j = job(&format!("extra{k}"));
        j.place = Place {
            lat,
            lon,
            address: None,
            location_id: None,
        };
        j.required_skills.clear();
        input.jobs.push(j);
    }
    let c = compiled(&input);
    let result = solve(
        &c.problem,
        &SolverConfig {
            max_iterations: Some(200),
            time_limit: None,
            ..SolverConfig::default()
        },
    );
    assert!(result.feasible);
    // Every job planned, on an allowed technician, with the search's cost re-derived
    // route by route (the core checker knows nothing of field rules).
    let rules = c.problem.rules().unwrap();
    let mut planned = Vec::new();
    let mut recomputed = Cost::ZERO;
    for r in result.solution.used_routes() {
        let (schedule, eval) = schedule_route(&c.problem, r.vehicle_type, &r.jobs).unwrap();
        assert!(eval.is_feasible(), "{r:?}");
        recomputed += eval.cost(0, 0);
        for stop in &schedule.stops {
            let allowed = &rules.jobs[stop.job].allowed;
            assert!(allowed.as_ref().is_none_or(|a| a.contains(&r.vehicle_type)));
            let local = c.to_local(stop.start);
            assert!((8..17).contains(&local.hour()), "{local}");
        }
        if r.vehicle_type == 0 {
            let b = schedule.break_taken.unwrap();
            assert!(
                c.to_local(b.start).hour() >= 12
                    && c.to_local(b.end) <= c.to_local(Duration(14 * H))
            );
        }
        planned.extend(r.jobs.iter().copied());
    }
    planned.sort_unstable();
    assert_eq!(planned, (0..input.jobs.len()).collect::<Vec<_>>());
    assert_eq!(recomputed, result.cost);
}

#[test]
fn compiles_two_hundred_technicians_and_two_thousand_jobs_quickly() {
    let mut input = minimal();
    input.skills = Some((0..10).map(|s| format!("s{s}")).collect());
    input.technicians = (0..200)
        .map(|i| {
            let (main, second) = (format!("s{}", i % 10), format!("s{}", (i + 3) % 10));
            let mut t = technician(
                &format!("t{i}"),
                &[(main.as_str(), 3), (second.as_str(), 2)],
            );
            let (lat, lon) = (38.6 + (i % 20) as f64 * 0.02, -9.3 + (i / 20) as f64 * 0.03);
            t.home = Place {
                lat,
                lon,
                address: None,
                location_id: None,
            };
            t.shifts = (0..5)
                .map(|d| shift(&format!("2026-03-{:02}", 23 + d), "08:00", "17:00"))
                .collect();
            t.territory = Some(Territory::Polygon {
                coordinates: square(lon, lat, 0.15),
            });
            t.van_capacity = Some(10);
            t
        })
        .collect();
    input.jobs = (0..2000)
        .map(|k| {
            let mut j = job(&format!("j{k}"));
            j.place = Place {
                lat: 38.6 + (k % 43) as f64 * 0.01,
                lon: -9.3 + (k % 47) as f64 * 0.005,
                address: None,
                location_id: None,
            };
            j.required_skills = [(format!("s{}", k % 10), 1 + (k % 3) as u8)].into();
            j.duration_by_level = [(2, 45), (3, 30)].into();
            let day = 23 + k % 5;
            j.windows = vec![window(
                &format!("2026-03-{day:02}T09:00:00Z"),
                &format!("2026-03-{day:02}T15:00:00Z"),
            )];
            j
        })
        .collect();
    let started = std::time::Instant::now();
    let c = compiled(&input);
    let elapsed = started.elapsed();
    println!("compiled 200 technicians x 5 shifts and 2000 jobs in {elapsed:?}");
    assert_eq!(c.problem.vehicle_types().len(), 1000);
    let blocked = c.job_blockers.iter().filter(|b| b.is_some()).count();
    println!("{blocked} jobs blocked");
    assert!(blocked < 100, "{blocked}");
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
}
