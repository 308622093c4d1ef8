//! The independent plan checker: a hand-computed plan passes with its hand-computed
//! cost, and each kind of mistake in it is found, with its code and where it is.
//!
//! The scenario: São Paulo (UTC−3, no DST), Monday 2025-03-10. Ana starts at home H at
//! 08:00 (shift 08:00–13:00, 60 minutes of overtime allowed, a 30-minute break between
//! 11:30 and 13:00) and visits j1 at A, j2 at B and j3 at C, on a line H–A–B–C with a
//! user matrix (H→A 10 min/5 km, A→B 15 min/7 km, B→C 20 min/9 km, C→H 45 min/21 km).
//! Nobody has the skill j4 needs, so it is unassigned.
//!
//! | visit | arrival | start | end | notes |
//! |---|---|---|---|---|
//! | j1 | 08:10 | 08:10 | 08:55 | 45 min at Ana's fiber level 3; preferred bob |
//! | j2 | 09:10 | 10:30 | 11:00 | window from 10:30; SLA 10:00, 30 min late |
//! | break | | 11:30 | 12:00 | after j2 |
//! | j3 | 11:20 | 12:00 | 12:20 | window from 12:00 |
//! | home | 13:05 | | | 5 min of overtime |

use despacho_solver::field::check::{check_plan, CheckError, PlanCheck};
use despacho_solver::field::input::ProblemInput;
use despacho_solver::field::plan::{
    Plan, PlannedBreak, PlannedRoute, UnassignedJob, UnassignedReason,
};
use serde_json::json;

fn problem() -> ProblemInput {
    let line = [
        [0, 600, 1500, 2700],
        [600, 0, 900, 2100],
        [1500, 900, 0, 1200],
        [2700, 2100, 1200, 0],
    ];
    let metres = [
        [0, 5000, 12000, 21000],
        [5000, 0, 7000, 16000],
        [12000, 7000, 0, 9000],
        [21000, 16000, 9000, 0],
    ];
    let place = |id: &str, lon: f64| json!({"lat": -23.55, "lon": lon, "location_id": id});
    serde_json::from_value(json!({
        "version": 1,
        "time_zone": "America/Sao_Paulo",
        "technicians": [
            {
                "id": "ana",
                "skills": {"fiber": 3, "pppoe": 1},
                "home": place("H", -46.70),
                "shifts": [{
                    "date": "2025-03-10", "start": "08:00:00", "end": "13:00:00",
                    "break_rule": {"duration_minutes": 30, "earliest_start": "11:30:00", "latest_end": "13:00:00"},
                    "overtime_minutes": 60,
                    "overtime_cost_per_hour": 30.0
                }],
                "cost_per_hour": 20.0,
                "cost_per_km": 0.5,
                "territory": {"type": "Polygon", "coordinates": [[
                    [-46.8, -23.6], [-46.5, -23.6], [-46.5, -23.5], [-46.8, -23.5], [-46.8, -23.6]
                ]]},
                "van_capacity": 3,
                "max_jobs_per_day": 5
            },
            {
                "id": "bob",
                "skills": {"pppoe": 1},
                "home": place("H", -46.70),
                "shifts": [{"date": "2025-03-10", "start": "08:00:00", "end": "17:00:00"}]
            }
        ],
        "jobs": [
            {
                "id": "j1", "kind": "installation", "place": place("A", -46.65),
                "duration_minutes": 60, "duration_by_level": {"3": 45},
                "required_skills": {"fiber": 2},
                "windows": [{"start": "2025-03-10T08:00:00-03:00", "end": "2025-03-10T10:00:00-03:00"}],
                "preferred_technician": "bob",
                "equipment": {"deliver": 2}
            },
            {
                "id": "j2", "kind": "repair", "place": place("B", -46.60),
                "duration_minutes": 30,
                "windows": [{"start": "2025-03-10T10:30:00-03:00", "end": "2025-03-10T12:00:00-03:00"}],
                "sla_due": "2025-03-10T10:00:00-03:00"
            },
            {
                "id": "j3", "kind": "equipment_return", "place": place("C", -46.55),
                "duration_minutes": 20,
                "windows": [{"start": "2025-03-10T12:00:00-03:00", "end": "2025-03-10T16:00:00-03:00"}],
                "pinned_technician": "ana",
                "equipment": {"collect": 1}
            },
            {
                "id": "j4", "kind": "repair", "place": place("B", -46.60),
                "duration_minutes": 30,
                "required_skills": {"copper": 2},
                "windows": [{"start": "2025-03-10T08:00:00-03:00", "end": "2025-03-10T17:00:00-03:00"}],
                "priority": 3
            }
        ],
        "travel": {"mode": "matrix", "locations": ["H", "A", "B", "C"], "durations_s": line, "distances_m": metres}
    }))
    .unwrap()
}

/// 08:00 → 13:05 is 305 minutes = 61/12 hours.
fn route_hours() -> f64 {
    61.0 / 12.0
}

fn expected_cost() -> f64 {
    let travel_and_work = 0.5 * 42.0 + 20.0 * route_hours();
    let overtime = 5.0 * (2.0 + 30.0 / 60.0);
    let sla = 30.0 * 100.0;
    let not_preferred = 5.0;
    let balance = 0.5 * route_hours() * route_hours();
    let unassigned = 3.0 * 100_000.0;
    travel_and_work + overtime + sla + not_preferred + balance + unassigned
}

fn t(hhmm: &str) -> String {
    format!("2025-03-10T{hhmm}:00-03:00")
}

fn plan() -> Plan {
    let stop = |job: &str,
                arrival: &str,
                start: &str,
                end: &str,
                waiting: f64,
                travel: f64,
                km: f64,
                late: f64| {
        json!({
            "job": job, "arrival": t(arrival), "start": t(start), "end": t(end),
            "waiting_minutes": waiting, "travel_minutes": travel, "travel_km": km, "sla_late_minutes": late
        })
    };
    serde_json::from_value(json!({
        "version": 1,
        "time_zone": "America/Sao_Paulo",
        "routes": [{
            "technician": "ana",
            "date": "2025-03-10",
            "start": t("08:00"),
            "end": t("13:05"),
            "stops": [
                stop("j1", "08:10", "08:10", "08:55", 0.0, 10.0, 5.0, 0.0),
                stop("j2", "09:10", "10:30", "11:00", 80.0, 15.0, 7.0, 30.0),
                stop("j3", "11:20", "12:00", "12:20", 40.0, 20.0, 9.0, 0.0),
            ],
            "break_taken": {"start": t("11:30"), "end": t("12:00"), "after_job": "j2"},
            "return_travel_minutes": 45.0,
            "return_travel_km": 21.0,
            "distance_km": 42.0,
            "duration_minutes": 305.0,
            "overtime_minutes": 5.0,
            "start_load": 2,
            "peak_load": 2
        }],
        "unassigned": [{
            "job": "j4", "reason": "no_skilled_technician",
            "message": "no technician has all the required skills at the required level"
        }],
        "kpis": {
            "jobs_total": 4, "jobs_assigned": 3, "jobs_unassigned": 1,
            "routes_used": 1, "shifts_available": 2,
            "travel_km": 42.0, "travel_hours": 1.5, "work_hours": 1.583, "utilisation": 0.32,
            "overtime_minutes": 5.0, "sla_jobs": 1, "sla_hits": 0, "sla_misses": 1
        },
        "cost": {
            "total": expected_cost(), "unassigned": 300000.0,
            "routes": expected_cost() - 300000.0, "stability": 0.0
        }
    }))
    .unwrap()
}

fn check(problem: &ProblemInput, plan: &Plan) -> PlanCheck {
    check_plan(problem, plan).expect("the problem is readable")
}

/// Checks a mutated plan and asserts that a violation has `code` at `path`.
#[track_caller]
fn assert_violation(problem: &ProblemInput, plan: &Plan, code: &str, path: &str) {
    let report = check(problem, plan);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.code == code && v.path == path),
        "expected `{code}` at {path}, found:\n{}",
        report
            .violations
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!report.is_feasible());
}

#[track_caller]
fn assert_plan_violation(mutate: impl FnOnce(&mut Plan), code: &str, path: &str) {
    let mut p = plan();
    mutate(&mut p);
    assert_violation(&problem(), &p, code, path);
}

#[track_caller]
fn assert_problem_violation(mutate: impl FnOnce(&mut ProblemInput), code: &str, path: &str) {
    let mut pr = problem();
    mutate(&mut pr);
    assert_violation(&pr, &plan(), code, path);
}

fn route(p: &mut Plan) -> &mut PlannedRoute {
    &mut p.routes[0]
}

#[test]
fn accepts_the_hand_computed_plan_with_its_cost() {
    let report = check(&problem(), &plan());
    assert!(report.is_feasible(), "{:#?}", report.violations);
    assert!(
        (report.cost - expected_cost()).abs() < 1e-6,
        "{} vs {}",
        report.cost,
        expected_cost()
    );
    assert!((report.cost_parts.unassigned - 300_000.0).abs() < 1e-9);
    assert!((report.cost_parts.sla_lateness - 3000.0).abs() < 1e-9);
    assert!((report.cost_parts.overtime - 12.5).abs() < 1e-9);
    assert!((report.cost_parts.not_preferred - 5.0).abs() < 1e-9);
    assert!((report.cost_parts.travel_and_work - (21.0 + 20.0 * route_hours())).abs() < 1e-9);
    assert!((report.cost_parts.balance - 0.5 * route_hours().powi(2)).abs() < 1e-9);
    assert!((report.cost_parts.routes + report.cost_parts.unassigned - report.cost).abs() < 1e-9);
    assert_eq!((report.jobs_assigned, report.jobs_unassigned), (3, 1));
}

#[test]
fn accepts_a_break_before_the_first_visit() {
    let mut pr = problem();
    pr.technicians[0].shifts[0]
        .break_rule
        .as_mut()
        .unwrap()
        .earliest_start = "08:00:00".parse().unwrap();
    let mut p = plan();
    let r = route(&mut p);
    r.break_taken = Some(PlannedBreak {
        start: t("08:00"),
        end: t("08:30"),
        after_job: None,
    });
    (r.stops[0].arrival, r.stops[0].start, r.stops[0].end) = (t("08:40"), t("08:40"), t("09:25"));
    r.stops[1].arrival = t("09:40");
    let report = check(&pr, &p);
    assert!(report.is_feasible(), "{:#?}", report.violations);
}

#[test]
fn accepts_small_rounding_of_reported_numbers_and_cost() {
    let mut p = plan();
    p.cost.total *= 1.004;
    route(&mut p).duration_minutes = 305.01;
    route(&mut p).stops[0].travel_km = 5.01;
    let report = check(&problem(), &p);
    assert!(report.is_feasible(), "{:#?}", report.violations);
}

#[test]
fn fails_on_an_unreadable_problem() {
    let mut pr = problem();
    pr.time_zone = "Mars/Olympus".into();
    assert!(matches!(
        check_plan(&pr, &plan()),
        Err(CheckError::TimeZone(_))
    ));

    let mut pr = problem();
    pr.jobs[2].place.location_id = Some("Z".into());
    match check_plan(&pr, &plan()) {
        Err(CheckError::Travel { path, code, .. }) => {
            assert_eq!(path, "$.jobs[2].place");
            assert_eq!(code, "unknown_location");
        }
        other => panic!("expected a travel error, got {other:?}"),
    }
}

// --- plan header ---

#[test]
fn rejects_another_plan_version() {
    assert_plan_violation(|p| p.version = 2, "version", "$.version");
}

#[test]
fn rejects_another_time_zone() {
    assert_plan_violation(
        |p| p.time_zone = "Europe/Lisbon".into(),
        "time_zone",
        "$.time_zone",
    );
}

// --- routes and jobs ---

#[test]
fn rejects_an_unknown_technician() {
    assert_plan_violation(
        |p| route(p).technician = "zed".into(),
        "unknown_technician",
        "$.routes[0].technician",
    );
}

#[test]
fn rejects_a_route_on_a_day_without_shift() {
    assert_plan_violation(
        |p| route(p).date = "2025-03-11".parse().unwrap(),
        "no_shift",
        "$.routes[0].date",
    );
}

#[test]
fn rejects_a_second_route_for_the_same_technician_and_day() {
    assert_plan_violation(
        |p| {
            let mut empty = p.routes[0].clone();
            empty.stops.clear();
            empty.break_taken = None;
            p.routes.push(empty);
        },
        "duplicate_route",
        "$.routes[1]",
    );
}

#[test]
fn rejects_a_visit_to_an_unknown_job() {
    assert_plan_violation(
        |p| route(p).stops[2].job = "j9".into(),
        "unknown_job",
        "$.routes[0].stops[2].job",
    );
    assert_plan_violation(
        |p| p.unassigned[0].job = "j9".into(),
        "unknown_job",
        "$.unassigned[0].job",
    );
}

#[test]
fn rejects_a_job_planned_twice() {
    // Bob also does j1: H→A 10 min, 60 min without the fiber level, back 10 min.
    assert_plan_violation(
        |p| {
            let mut bob = p.routes[0].clone();
            bob.technician = "bob".into();
            bob.stops.truncate(1);
            bob.stops[0].end = t("09:10");
            bob.break_taken = None;
            bob.end = t("09:20");
            p.routes.push(bob);
        },
        "job_twice",
        "$.routes[1].stops[0].job",
    );
}

#[test]
fn rejects_a_job_listed_twice_as_unassigned() {
    assert_plan_violation(
        |p| p.unassigned.push(p.unassigned[0].clone()),
        "job_twice",
        "$.unassigned[1].job",
    );
}

#[test]
fn rejects_a_job_neither_planned_nor_unassigned() {
    assert_plan_violation(|p| p.unassigned.clear(), "job_missing", "$.unassigned");
}

#[test]
fn rejects_a_planned_job_listed_as_unassigned() {
    assert_plan_violation(
        |p| {
            p.unassigned.push(UnassignedJob {
                job: "j1".into(),
                reason: UnassignedReason::NoCapacityLeft,
                message: String::new(),
            })
        },
        "unassigned_but_planned",
        "$.unassigned[1].job",
    );
}

// --- job rules ---

#[test]
fn rejects_a_technician_without_the_required_level() {
    assert_problem_violation(
        |pr| {
            pr.jobs[1].required_skills.insert("pppoe".into(), 2);
        },
        "missing_skill",
        "$.routes[0].stops[1].job",
    );
}

#[test]
fn rejects_a_job_outside_the_territory() {
    assert_problem_violation(
        |pr| {
            pr.technicians[0].territory = Some(serde_json::from_value(json!({
                "type": "MultiPolygon",
                "coordinates": [[[[-46.8, -23.6], [-46.62, -23.6], [-46.62, -23.5], [-46.8, -23.5], [-46.8, -23.6]]]]
            })).unwrap())
        },
        "outside_territory",
        "$.routes[0].stops[1].job",
    );
}

#[test]
fn rejects_a_job_pinned_to_someone_else() {
    assert_problem_violation(
        |pr| pr.jobs[2].pinned_technician = Some("bob".into()),
        "pinned_technician",
        "$.routes[0].stops[2].job",
    );
}

#[test]
fn rejects_a_visit_that_misses_its_pinned_start() {
    assert_problem_violation(
        |pr| pr.jobs[1].pinned_start = Some(t("10:45").parse().unwrap()),
        "pinned_start",
        "$.routes[0].stops[1].start",
    );
}

#[test]
fn rejects_more_visits_than_the_daily_maximum() {
    assert_problem_violation(
        |pr| pr.technicians[0].max_jobs_per_day = Some(2),
        "too_many_jobs",
        "$.routes[0].stops",
    );
}

#[test]
fn rejects_a_van_loaded_beyond_capacity() {
    // Leaving with j1's two modems.
    assert_problem_violation(
        |pr| pr.technicians[0].van_capacity = Some(1),
        "capacity",
        "$.routes[0].start_load",
    );
    // Empty after j1, 3 collected at j2 fits, j3's one more does not.
    let mut pr = problem();
    pr.jobs[1].equipment.collect = 3;
    let mut p = plan();
    route(&mut p).peak_load = 4;
    assert_violation(&pr, &p, "capacity", "$.routes[0].stops[2]");
}

#[test]
fn rejects_misreported_loads() {
    assert_plan_violation(
        |p| route(p).start_load = 3,
        "reported_value",
        "$.routes[0].start_load",
    );
    assert_plan_violation(
        |p| route(p).peak_load = 1,
        "reported_value",
        "$.routes[0].peak_load",
    );
}

// --- times ---

#[test]
fn rejects_an_unreadable_time() {
    assert_plan_violation(
        |p| route(p).stops[1].start = "10:30".into(),
        "bad_time",
        "$.routes[0].stops[1].start",
    );
}

#[test]
fn rejects_a_time_with_the_wrong_offset() {
    // The same instant, written with Lisbon's offset.
    assert_plan_violation(
        |p| route(p).start = "2025-03-10T11:00:00+00:00".into(),
        "bad_time",
        "$.routes[0].start",
    );
}

#[test]
fn rejects_a_route_outside_the_shift() {
    assert_plan_violation(
        |p| route(p).start = t("07:59"),
        "shift",
        "$.routes[0].start",
    );
    assert_plan_violation(
        |p| route(p).end = "2025-03-10T14:00:02-03:00".into(),
        "shift",
        "$.routes[0].end",
    );
}

#[test]
fn rejects_an_arrival_faster_than_travel() {
    assert_plan_violation(
        |p| route(p).stops[0].arrival = t("08:09"),
        "travel_time",
        "$.routes[0].stops[0].arrival",
    );
    // The break, taken on the way, is not travel time.
    assert_plan_violation(
        |p| {
            let r = route(p);
            r.break_taken = Some(PlannedBreak {
                start: t("11:00"),
                end: t("11:30"),
                after_job: Some("j2".into()),
            });
            r.stops[2].arrival = t("11:45");
        },
        "travel_time",
        "$.routes[0].stops[2].arrival",
    );
    assert_plan_violation(
        |p| route(p).end = t("13:04"),
        "travel_time",
        "$.routes[0].end",
    );
}

#[test]
fn rejects_a_visit_starting_before_arrival() {
    assert_plan_violation(
        |p| route(p).stops[1].arrival = t("10:31"),
        "start_before_arrival",
        "$.routes[0].stops[1].start",
    );
}

#[test]
fn rejects_a_visit_of_the_wrong_duration() {
    // Ana's fiber level 3 makes j1 45 minutes, not the base 60.
    assert_plan_violation(
        |p| route(p).stops[0].end = t("09:10"),
        "duration",
        "$.routes[0].stops[0].end",
    );
    // At level 2 no duration_by_level key applies.
    assert_problem_violation(
        |pr| {
            pr.technicians[0].skills.insert("fiber".into(), 2);
        },
        "duration",
        "$.routes[0].stops[0].end",
    );
}

#[test]
fn rejects_a_visit_outside_its_windows() {
    assert_problem_violation(
        |pr| pr.jobs[0].windows[0].start = t("08:30").parse().unwrap(),
        "window",
        "$.routes[0].stops[0].start",
    );
}

// --- break ---

#[test]
fn rejects_a_route_without_its_break() {
    assert_plan_violation(
        |p| route(p).break_taken = None,
        "missing_break",
        "$.routes[0].break_taken",
    );
}

#[test]
fn rejects_a_break_that_breaks_its_rule() {
    let with_break = |start: &str, end: &str, after: Option<&str>| {
        let b = PlannedBreak {
            start: t(start),
            end: t(end),
            after_job: after.map(Into::into),
        };
        move |p: &mut Plan| route(p).break_taken = Some(b)
    };
    // Before 11:30.
    assert_plan_violation(
        with_break("11:25", "11:55", Some("j2")),
        "break",
        "$.routes[0].break_taken.start",
    );
    // After 13:00 (after the last visit).
    assert_plan_violation(
        with_break("12:40", "13:10", Some("j3")),
        "break",
        "$.routes[0].break_taken.end",
    );
    // 25 minutes.
    assert_plan_violation(
        with_break("11:30", "11:55", Some("j2")),
        "break",
        "$.routes[0].break_taken",
    );
    // Not in the gap after j1 (08:55–10:30).
    assert_plan_violation(
        with_break("11:30", "12:00", Some("j1")),
        "break",
        "$.routes[0].break_taken",
    );
    // After a job that is not in the route.
    assert_plan_violation(
        with_break("11:30", "12:00", Some("j4")),
        "break",
        "$.routes[0].break_taken.after_job",
    );
    // In the gap after j3 (12:20–13:05), which cannot hold 45 minutes of travel and the break.
    assert_plan_violation(
        with_break("12:30", "13:00", Some("j3")),
        "break",
        "$.routes[0].break_taken",
    );
}

#[test]
fn rejects_a_break_on_a_shift_without_break_rule() {
    assert_problem_violation(
        |pr| pr.technicians[0].shifts[0].break_rule = None,
        "break",
        "$.routes[0].break_taken",
    );
}

// --- reported numbers, KPIs, cost ---

#[test]
fn rejects_misreported_numbers() {
    assert_plan_violation(
        |p| route(p).stops[1].travel_minutes = 14.0,
        "reported_value",
        "$.routes[0].stops[1].travel_minutes",
    );
    assert_plan_violation(
        |p| route(p).stops[1].travel_km = 7.5,
        "reported_value",
        "$.routes[0].stops[1].travel_km",
    );
    assert_plan_violation(
        |p| route(p).stops[1].sla_late_minutes = 0.0,
        "reported_value",
        "$.routes[0].stops[1].sla_late_minutes",
    );
    assert_plan_violation(
        |p| route(p).distance_km = 40.0,
        "reported_value",
        "$.routes[0].distance_km",
    );
    assert_plan_violation(
        |p| route(p).overtime_minutes = 0.0,
        "reported_value",
        "$.routes[0].overtime_minutes",
    );
    assert_plan_violation(
        |p| route(p).duration_minutes = 300.0,
        "reported_value",
        "$.routes[0].duration_minutes",
    );
    assert_plan_violation(
        |p| route(p).return_travel_minutes = 40.0,
        "reported_value",
        "$.routes[0].return_travel_minutes",
    );
}

#[test]
fn rejects_miscounted_kpis() {
    assert_plan_violation(
        |p| p.kpis.jobs_assigned = 4,
        "kpi_mismatch",
        "$.kpis.jobs_assigned",
    );
    assert_plan_violation(
        |p| p.kpis.jobs_unassigned = 0,
        "kpi_mismatch",
        "$.kpis.jobs_unassigned",
    );
    assert_plan_violation(|p| p.kpis.sla_hits = 1, "kpi_mismatch", "$.kpis.sla_hits");
}

#[test]
fn rejects_a_wrong_total_cost() {
    assert_plan_violation(|p| p.cost.total *= 1.006, "cost_mismatch", "$.cost.total");
    assert_plan_violation(|p| p.cost.total = f64::NAN, "cost_mismatch", "$.cost.total");
}

#[test]
fn takes_the_stability_cost_as_reported() {
    let mut p = plan();
    p.cost.stability = 50.0;
    p.cost.total += 50.0;
    let report = check(&problem(), &p);
    assert!(report.is_feasible(), "{:#?}", report.violations);
    assert!((report.cost - expected_cost() - 50.0).abs() < 1e-6);
    assert_plan_violation(
        |p| p.cost.stability = -10.0,
        "reported_value",
        "$.cost.stability",
    );
}

#[test]
fn counts_an_unlisted_job_as_unassigned_in_the_cost() {
    let mut p = plan();
    p.unassigned.clear();
    let report = check(&problem(), &p);
    assert!((report.cost - expected_cost()).abs() < 1e-6);
    assert_eq!(report.jobs_unassigned, 1);
}
