//! Slot search: offers are real (a booked offer always fits), full days offer nothing,
//! coverage and skills give clear answers, and booking offer after offer never
//! overfills a technician-day.

use despacho_solver::field::input::{
    BreakRule, Equipment, JobKind, Place, Shift, Technician, WindowInput,
};
use despacho_solver::field::slots::{
    check_visit, examined_days, request_job, search_slots, BookedVisit, Examined, Operation,
    SlotAnswer, SlotRequest, NEAREST_PER_DAY,
};
use despacho_solver::field::travel::TravelOptions;
use std::collections::BTreeMap;

fn date(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn time(s: &str) -> chrono::NaiveTime {
    chrono::NaiveTime::parse_from_str(s, "%H:%M").unwrap()
}

fn place(lat: f64, lon: f64) -> Place {
    Place {
        lat,
        lon,
        address: None,
        location_id: None,
    }
}

fn technician(id: &str, home: Place, days: &[&str], end: &str, lunch: bool) -> Technician {
    Technician {
        id: id.into(),
        name: None,
        skills: BTreeMap::from([("pppoe".to_string(), 1), ("fiber_splicing".to_string(), 2)]),
        home,
        shifts: days
            .iter()
            .map(|d| Shift {
                date: date(d),
                start: time("08:00"),
                end: time(end),
                start_place: None,
                end_place: None,
                break_rule: lunch.then(|| BreakRule {
                    duration_minutes: 45,
                    earliest_start: time("11:30"),
                    latest_end: time("14:00"),
                }),
                overtime_minutes: 0,
                overtime_cost_per_hour: 0.0,
            })
            .collect(),
        cost_per_hour: 30.0,
        cost_per_km: 0.5,
        territory: None,
        van_capacity: Some(4),
        max_jobs_per_day: None,
    }
}

fn operation(technicians: Vec<Technician>) -> Operation {
    Operation {
        time_zone: "America/Sao_Paulo".into(),
        travel: TravelOptions::default(),
        technicians,
        repair_reserve: 0.0,
    }
}

fn request(at: Place, minutes: u32, day: &str, days: u32) -> SlotRequest {
    SlotRequest {
        place: at,
        kind: JobKind::Installation,
        tier: Default::default(),
        duration_minutes: minutes,
        required_skills: BTreeMap::from([("pppoe".to_string(), 1)]),
        equipment: Equipment::default(),
        earliest_day: date(day),
        days,
        window_minutes: 120,
    }
}

fn slots(answer: SlotAnswer) -> Vec<despacho_solver::field::slots::SlotOffer> {
    match answer {
        SlotAnswer::Slots(s) => s,
        other => panic!("expected slots, got {other:?}"),
    }
}

const SE: (f64, f64) = (-23.5503, -46.6339);

#[test]
fn an_empty_day_offers_every_window_that_fits_the_shift() {
    let op = operation(vec![technician(
        "ana",
        place(SE.0, SE.1),
        &["2026-12-01"],
        "17:00",
        true,
    )]);
    let offers = slots(
        search_slots(
            &op,
            &[],
            &request(place(-23.556, -46.64), 60, "2026-12-01", 1),
            50,
        )
        .unwrap(),
    );
    let starts: Vec<String> = offers
        .iter()
        .map(|o| o.start.format("%H:%M").to_string())
        .collect();
    // 08–10 … 14–16 fit; 15–17 would end the visit after 17:00 at the earliest with the drive home.
    for h in [
        "08:00", "09:00", "10:00", "11:00", "12:00", "13:00", "14:00",
    ] {
        assert!(
            starts.contains(&h.to_string()),
            "{h} missing from {starts:?}"
        );
    }
    assert!(offers
        .iter()
        .all(|o| o.end - o.start == chrono::TimeDelta::hours(2)));
    assert!(offers
        .iter()
        .all(|o| o.technician == "ana" && o.grade <= 100));
    assert!(
        offers.windows(2).all(|w| w[0].grade >= w[1].grade),
        "best first"
    );
    // Every offer, booked, really fits.
    for o in &offers {
        let visit = BookedVisit {
            job: request_job(
                &request(place(-23.556, -46.64), 60, "2026-12-01", 1),
                WindowInput {
                    start: o.start,
                    end: o.end,
                },
            ),
            technician: o.technician.clone(),
            date: o.date,
        };
        assert!(check_visit(&op, &visit, &[]).is_ok(), "{}", o.start);
    }
}

#[test]
fn a_full_day_offers_nothing_and_refuses_the_booking() {
    // 08:00–12:00, no lunch; a 3-hour visit already booked for 08–10 a few km away.
    let op = operation(vec![technician(
        "ana",
        place(SE.0, SE.1),
        &["2026-12-01"],
        "12:00",
        false,
    )]);
    let offset = chrono::FixedOffset::west_opt(3 * 3600).unwrap();
    let at = |h: u32| {
        date("2026-12-01")
            .and_hms_opt(h, 0, 0)
            .unwrap()
            .and_local_timezone(offset)
            .unwrap()
    };
    let booked = BookedVisit {
        job: request_job(
            &request(place(-23.56, -46.65), 180, "2026-12-01", 1),
            WindowInput {
                start: at(8),
                end: at(10),
            },
        ),
        technician: "ana".into(),
        date: date("2026-12-01"),
    };
    let req = request(place(-23.54, -46.62), 60, "2026-12-01", 1);
    assert!(!slots(search_slots(&op, &[], &req, 50).unwrap()).is_empty());
    assert_eq!(
        slots(search_slots(&op, std::slice::from_ref(&booked), &req, 50).unwrap()),
        vec![]
    );
    let visit = BookedVisit {
        job: request_job(
            &req,
            WindowInput {
                start: at(9),
                end: at(11),
            },
        ),
        technician: "ana".into(),
        date: date("2026-12-01"),
    };
    assert!(check_visit(&op, &visit, std::slice::from_ref(&booked)).is_err());
}

#[test]
fn coverage_and_skills_are_clear_answers() {
    let mut north = technician("ana", place(-23.50, -46.63), &["2026-12-01"], "17:00", true);
    north.territory = Some(despacho_solver::field::input::Territory::Polygon {
        coordinates: vec![vec![
            [-46.70, -23.45],
            [-46.60, -23.45],
            [-46.60, -23.52],
            [-46.70, -23.52],
            [-46.70, -23.45],
        ]],
    });
    let op = operation(vec![north]);
    let south = request(place(-23.65, -46.65), 60, "2026-12-01", 1);
    assert_eq!(
        search_slots(&op, &[], &south, 10).unwrap(),
        SlotAnswer::NotServed
    );
    let mut iptv = request(place(-23.50, -46.65), 60, "2026-12-01", 1);
    iptv.required_skills = BTreeMap::from([("iptv".to_string(), 1)]);
    assert_eq!(
        search_slots(&op, &[], &iptv, 10).unwrap(),
        SlotAnswer::NoSkilledTechnician
    );
    let mut bad = request(place(123.0, 0.0), 0, "2026-12-01", 0);
    bad.window_minutes = 5;
    let errors = search_slots(&op, &[], &bad, 10).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$.place",
            "$.duration_minutes",
            "$.days",
            "$.window_minutes"
        ]
    );
}

#[test]
fn booking_the_best_offer_again_and_again_never_overfills_a_day() {
    let mut rng = fastrand::Rng::with_seed(5);
    let days = ["2026-12-01", "2026-12-02"];
    let op = operation(vec![
        technician("ana", place(SE.0, SE.1), &days, "17:00", true),
        technician("bia", place(-23.60, -46.68), &days, "17:00", true),
    ]);
    let mut booked: Vec<BookedVisit> = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let at = place(-23.50 - 0.12 * rng.f64(), -46.60 - 0.1 * rng.f64());
        let req = request(at, 30 + 15 * rng.u32(0..5), days[0], 2);
        let offers = slots(search_slots(&op, &booked, &req, 5).unwrap());
        let Some(o) = offers.first() else {
            refused += 1;
            continue;
        };
        let visit = BookedVisit {
            job: request_job(
                &req,
                WindowInput {
                    start: o.start,
                    end: o.end,
                },
            ),
            technician: o.technician.clone(),
            date: o.date,
        };
        let others: Vec<BookedVisit> = booked
            .iter()
            .filter(|b| b.technician == visit.technician && b.date == visit.date)
            .cloned()
            .collect();
        let planned = check_visit(&op, &visit, &others).expect("an offered slot fits");
        // The planned times keep every window and never overlap.
        assert_eq!(planned.len(), others.len() + 1);
        let mut spans = Vec::new();
        for (b, p) in others.iter().chain(std::iter::once(&visit)).zip(&planned) {
            let w = &b.job.windows[0];
            assert!(
                w.start <= p.start && p.start <= w.end,
                "{p:?} outside {w:?}"
            );
            assert_eq!(
                (p.end - p.start).num_minutes(),
                i64::from(b.job.duration_minutes)
            );
            spans.push((p.start, p.end));
        }
        spans.sort();
        assert!(spans.windows(2).all(|s| s[0].1 <= s[1].0), "{spans:?}");
        let mut v = visit;
        v.job.id = format!("b{}", booked.len());
        booked.push(v);
    }
    assert!(booked.len() >= 20, "only {} booked", booked.len());
    assert!(
        refused > 0,
        "two technicians for two days cannot take 40 visits"
    );
    // Each technician-day's visits still fit together: remove one, it fits back.
    for b in &booked {
        let others: Vec<BookedVisit> = booked
            .iter()
            .filter(|o| o.technician == b.technician && o.date == b.date && o.job.id != b.job.id)
            .cloned()
            .collect();
        assert!(check_visit(&op, b, &others).is_ok(), "{}", b.job.id);
    }
}

/// The booking service reads only the bookings of the examined technician-days: the
/// answer must be the same as with every booking, and at most NEAREST_PER_DAY
/// technicians are examined a day, skilled ones only.
#[test]
fn the_bookings_of_the_examined_days_decide_the_answer() {
    let mut rng = fastrand::Rng::with_seed(11);
    let days = ["2026-12-01", "2026-12-02", "2026-12-03"];
    // 20 technicians spread over the city, every fourth without the pppoe skill.
    let technicians: Vec<Technician> = (0..20)
        .map(|i| {
            let home = place(-23.45 - 0.25 * rng.f64(), -46.50 - 0.3 * rng.f64());
            let mut t = technician(&format!("t{i:02}"), home, &days, "17:00", i % 2 == 0);
            if i % 4 == 3 {
                t.skills.remove("pppoe");
            }
            t
        })
        .collect();
    let op = operation(technicians);
    let mut booked: Vec<BookedVisit> = Vec::new();
    let mut compared = 0;
    for round in 0..60 {
        let at = place(-23.45 - 0.25 * rng.f64(), -46.50 - 0.3 * rng.f64());
        let req = request(at, 30 + 15 * rng.u32(0..5), days[0], 3);
        let Examined::Days(examined) = examined_days(&op, &req).unwrap() else {
            panic!("every request is served");
        };
        for day in days {
            let on_day: Vec<_> = examined.iter().filter(|d| d.date == date(day)).collect();
            assert!(on_day.len() <= NEAREST_PER_DAY);
            assert!(on_day.iter().all(|d| {
                let n: usize = d.technician[1..].parse().unwrap();
                n % 4 != 3
            }));
        }
        let within: Vec<BookedVisit> = booked
            .iter()
            .filter(|b| {
                examined
                    .iter()
                    .any(|d| d.technician == b.technician && d.date == b.date)
            })
            .cloned()
            .collect();
        let all = search_slots(&op, &booked, &req, 10).unwrap();
        assert_eq!(
            all,
            search_slots(&op, &within, &req, 10).unwrap(),
            "round {round}"
        );
        compared += usize::from(within.len() < booked.len());
        // Book the best offer, so the days fill up.
        if let Some(o) = slots(all).first() {
            let job = request_job(
                &req,
                WindowInput {
                    start: o.start,
                    end: o.end,
                },
            );
            let mut visit = BookedVisit {
                job,
                technician: o.technician.clone(),
                date: o.date,
            };
            visit.job.id = format!("b{round}");
            booked.push(visit);
        }
    }
    assert!(booked.len() > 40, "{}", booked.len());
    assert!(
        compared > 10,
        "the filter left out bookings only {compared} times"
    );
}
