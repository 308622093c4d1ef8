//! The field-problem generator: deterministic, the promised mix and shape, times in the
//! city's own zone, and always a technician who can take each job.

use chrono::{Datelike, NaiveDate, NaiveTime, Offset, Timelike};
use despacho_solver::field::generate::{generate, City, GeneratorConfig};
use despacho_solver::field::input::{CustomerTier, JobKind, ProblemInput, Technician, Territory};
use despacho_solver::field::validate::validate;
use geo::{Distance as _, Haversine, Point};
use std::collections::{BTreeSet, HashMap};

fn config(city: City, technicians: usize, jobs: usize, days: usize, seed: u64) -> GeneratorConfig {
    GeneratorConfig {
        technicians,
        jobs,
        days,
        seed,
        city,
        start_date: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
    }
}

fn json(problem: &ProblemInput) -> String {
    serde_json::to_string_pretty(problem).unwrap()
}

fn km_from_centre(city: City, lat: f64, lon: f64) -> f64 {
    let c = city.centre();
    Haversine.distance(Point::new(c.lon, c.lat), Point::new(lon, lat)) / 1000.0
}

/// Even-odd ray casting over a GeoJSON ring of [lon, lat].
fn ring_contains(ring: &[[f64; 2]], lat: f64, lon: f64) -> bool {
    let mut inside = false;
    for pair in ring.windows(2) {
        let ([lon_a, lat_a], [lon_b, lat_b]) = (pair[0], pair[1]);
        if (lat_a > lat) != (lat_b > lat)
            && lon < lon_a + (lat - lat_a) / (lat_b - lat_a) * (lon_b - lon_a)
        {
            inside = !inside;
        }
    }
    inside
}

fn can_do(technician: &Technician, skills: &std::collections::BTreeMap<String, u8>) -> bool {
    skills
        .iter()
        .all(|(s, &level)| technician.skills.get(s).is_some_and(|&l| l >= level))
}

#[test]
fn same_seed_gives_the_same_json_and_another_seed_another() {
    for city in City::ALL {
        let a = json(&generate(&config(city, 12, 80, 2, 42)));
        let b = json(&generate(&config(city, 12, 80, 2, 42)));
        let c = json(&generate(&config(city, 12, 80, 2, 43)));
        assert_eq!(a, b, "{city}");
        assert_ne!(a, c, "{city}");
    }
}

#[test]
fn generates_the_requested_counts_with_sequential_ids_and_a_shift_every_day() {
    let problem = generate(&config(City::SaoPaulo, 50, 600, 3, 1));
    assert_eq!(problem.version, 1);
    assert_eq!(problem.time_zone, "America/Sao_Paulo");
    assert_eq!(problem.technicians.len(), 50);
    assert_eq!(problem.jobs.len(), 600);
    assert_eq!(problem.technicians[0].id, "tech-001");
    assert_eq!(problem.technicians[49].id, "tech-050");
    assert_eq!(problem.jobs[0].id, "job-0001");
    assert_eq!(problem.jobs[599].id, "job-0600");
    let dates: Vec<NaiveDate> = (1..=3)
        .map(|d| NaiveDate::from_ymd_opt(2026, 6, d).unwrap())
        .collect();
    for t in &problem.technicians {
        let shift_dates: Vec<NaiveDate> = t.shifts.iter().map(|s| s.date).collect();
        assert_eq!(shift_dates, dates, "{}", t.id);
        for s in &t.shifts {
            assert_eq!((s.end - s.start).num_hours(), 9, "{}", t.id);
            assert!(s.start.hour() >= 7 && s.end.hour() <= 18, "{}", t.id);
            let lunch = s.break_rule.as_ref().unwrap();
            assert_eq!(lunch.duration_minutes, 45);
            assert_eq!(
                lunch.earliest_start,
                NaiveTime::from_hms_opt(11, 30, 0).unwrap()
            );
            assert_eq!(lunch.latest_end, NaiveTime::from_hms_opt(14, 0, 0).unwrap());
            assert_eq!(s.overtime_minutes, 60);
            assert!((s.overtime_cost_per_hour - 1.5 * t.cost_per_hour).abs() < 0.011);
            assert!(
                s.start_place.is_none() && s.end_place.is_none(),
                "starts from home"
            );
        }
        assert!(
            (25.0..=40.0).contains(&t.cost_per_hour),
            "{}",
            t.cost_per_hour
        );
        assert!((0.6..=0.9).contains(&t.cost_per_km), "{}", t.cost_per_km);
        assert!((6..=10).contains(&t.van_capacity.unwrap()));
        assert!((10..=12).contains(&t.max_jobs_per_day.unwrap()));
        assert_eq!(t.skills.get("pppoe").map(|&l| l >= 1), Some(true));
        assert!(t.name.as_deref().is_some_and(|n| n.contains(' ')));
    }
    let ids: BTreeSet<&str> = problem.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids.len(), 600, "job ids are unique");
}

#[test]
fn job_kinds_and_business_share_match_an_isp_mix() {
    let problem = generate(&config(City::SaoPaulo, 50, 2000, 5, 7));
    let mut counts: HashMap<JobKind, usize> = HashMap::new();
    for job in &problem.jobs {
        *counts.entry(job.kind).or_default() += 1;
    }
    let share = |kind| counts.get(&kind).copied().unwrap_or(0) as f64 / 2000.0;
    for (kind, expected) in [
        (JobKind::Installation, 0.45),
        (JobKind::Repair, 0.35),
        (JobKind::EquipmentReturn, 0.12),
        (JobKind::Maintenance, 0.05),
        (JobKind::SiteSurvey, 0.03),
    ] {
        let tolerance = if expected > 0.1 { 0.03 } else { 0.015 };
        assert!(
            (share(kind) - expected).abs() <= tolerance,
            "{kind:?}: {} vs {expected}",
            share(kind)
        );
    }
    let business = problem
        .jobs
        .iter()
        .filter(|j| j.tier == CustomerTier::Business)
        .count() as f64
        / 2000.0;
    assert!((business - 0.20).abs() <= 0.03, "business share {business}");

    let installations: Vec<_> = problem
        .jobs
        .iter()
        .filter(|j| j.kind == JobKind::Installation)
        .collect();
    let iptv = installations
        .iter()
        .filter(|j| j.required_skills.contains_key("iptv"))
        .count() as f64
        / installations.len() as f64;
    assert!(
        (iptv - 0.15).abs() <= 0.04,
        "iptv share of installations {iptv}"
    );
    assert!(installations
        .iter()
        .any(|j| !j.duration_by_level.is_empty()));
}

#[test]
fn kinds_have_their_durations_skills_equipment_and_priorities() {
    let problem = generate(&config(City::Recife, 30, 1500, 3, 11));
    for job in &problem.jobs {
        let d = job.duration_minutes;
        let business = job.tier == CustomerTier::Business;
        match job.kind {
            JobKind::Installation => {
                assert!((60..=120).contains(&d), "{}: {d}", job.id);
                assert!((1..=2).contains(&job.equipment.deliver), "{}", job.id);
                assert!(
                    job.required_skills.contains_key("fiber_splicing")
                        || job.required_skills.contains_key("pppoe"),
                    "{}",
                    job.id
                );
                for (&level, &minutes) in &job.duration_by_level {
                    assert!(
                        level >= 2 && minutes < d,
                        "{}: faster at a higher level",
                        job.id
                    );
                }
            }
            JobKind::Repair => assert!((30..=90).contains(&d), "{}: {d}", job.id),
            JobKind::EquipmentReturn => {
                assert!((15..=20).contains(&d), "{}: {d}", job.id);
                assert!((1..=3).contains(&job.equipment.collect), "{}", job.id);
                assert_eq!(job.equipment.deliver, 0);
            }
            JobKind::Maintenance => assert!((45..=90).contains(&d), "{}: {d}", job.id),
            JobKind::SiteSurvey => {
                assert!(business, "{}: site surveys are for businesses", job.id);
                assert!((45..=75).contains(&d), "{}: {d}", job.id);
            }
        }
        if business && job.kind == JobKind::Repair {
            assert!((7..=9).contains(&job.priority), "{}", job.id);
            let due = job.sla_due.expect("business repairs have an SLA");
            assert_eq!(
                (due - job.windows[0].start).num_minutes(),
                240,
                "{}",
                job.id
            );
        } else {
            assert!(job.sla_due.is_none(), "{}", job.id);
        }
        if !business {
            assert!(
                (3..=6).contains(&job.priority),
                "{}: {}",
                job.id,
                job.priority
            );
        }
        let address = job.place.address.as_deref().unwrap();
        assert!(
            address.contains(", ") && address.contains(" — "),
            "{address}"
        );
    }
    assert!(problem
        .jobs
        .iter()
        .any(|j| j.required_skills.contains_key("business_network")));
}

#[test]
fn windows_lie_between_eight_and_six_local_on_the_planning_days() {
    for city in City::ALL {
        let days = 4;
        let problem = generate(&config(city, 20, 1000, days, 5));
        let tz = city.time_zone();
        let first = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let mut lengths: HashMap<i64, usize> = HashMap::new();
        let mut alternatives = 0;
        for job in &problem.jobs {
            assert!(!job.windows.is_empty());
            if job.windows.len() == 2 {
                alternatives += 1;
                let (a, b) = (&job.windows[0], &job.windows[1]);
                assert!(
                    a.start.with_timezone(&tz).date_naive()
                        < b.start.with_timezone(&tz).date_naive(),
                    "{}: alternatives on different days, in order",
                    job.id
                );
            }
            for w in &job.windows {
                let (start, end) = (w.start.with_timezone(&tz), w.end.with_timezone(&tz));
                let day = (start.date_naive() - first).num_days();
                assert!((0..days as i64).contains(&day), "{}: day {day}", job.id);
                assert_eq!(start.date_naive(), end.date_naive());
                assert!(
                    start.hour() >= 8 && start.minute() == 0,
                    "{}: {start}",
                    job.id
                );
                assert!(
                    end.time() <= NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
                    "{}",
                    job.id
                );
                // The written offset is the zone's offset at that instant.
                assert_eq!(w.start.offset().fix(), start.offset().fix());
                *lengths.entry((w.end - w.start).num_minutes()).or_default() += 1;
            }
        }
        assert_eq!(
            lengths.keys().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([120, 240]),
            "{city}"
        );
        let four_hours = lengths[&240] as f64 / 1000.0;
        assert!((0.06..=0.14).contains(&four_hours), "{city}: {four_hours}");
        let alternatives = alternatives as f64 / 1000.0;
        assert!(
            (0.03..=0.07).contains(&alternatives),
            "{city}: {alternatives}"
        );
    }
}

#[test]
fn a_single_day_has_no_alternative_windows() {
    let problem = generate(&config(City::Lisbon, 5, 300, 1, 9));
    assert!(problem.jobs.iter().all(|j| j.windows.len() == 1));
}

#[test]
fn lisbon_windows_change_offset_with_summer_time() {
    let problem = generate(&GeneratorConfig {
        technicians: 5,
        jobs: 200,
        days: 2,
        seed: 3,
        city: City::Lisbon,
        start_date: NaiveDate::from_ymd_opt(2026, 3, 28).unwrap(),
    });
    assert_eq!(problem.time_zone, "Europe/Lisbon");
    let (mut on_28, mut on_29) = (0, 0);
    for job in &problem.jobs {
        for (i, w) in job.windows.iter().enumerate() {
            let text = serde_json::to_value(&job.windows).unwrap()[i]["start"]
                .as_str()
                .unwrap()
                .to_owned();
            match w.start.date_naive().day() {
                28 => {
                    on_28 += 1;
                    assert_eq!(w.start.offset().local_minus_utc(), 0, "{}", job.id);
                    // chrono writes a zero offset as `Z`, the RFC 3339 spelling of +00:00.
                    let parsed = chrono::DateTime::parse_from_rfc3339(&text).unwrap();
                    assert_eq!(parsed.offset().local_minus_utc(), 0, "{text}");
                    assert!(text.ends_with('Z') || text.ends_with("+00:00"), "{text}");
                }
                29 => {
                    on_29 += 1;
                    assert_eq!(w.start.offset().local_minus_utc(), 3600, "{}", job.id);
                    assert!(text.ends_with("+01:00"), "{text}");
                }
                other => panic!("{}: window on the {other}th", job.id),
            }
        }
    }
    assert!(on_28 > 50 && on_29 > 50, "{on_28} / {on_29}");
}

#[test]
fn every_place_lies_within_the_city_radius() {
    for city in City::ALL {
        for seed in 0..3 {
            let problem = generate(&config(city, 40, 800, 1, seed));
            let places = problem
                .jobs
                .iter()
                .map(|j| &j.place)
                .chain(problem.technicians.iter().map(|t| &t.home));
            for place in places {
                let km = km_from_centre(city, place.lat, place.lon);
                assert!(
                    km <= city.radius_km(),
                    "{city}: {place:?} is {km:.2} km out"
                );
            }
        }
    }
}

#[test]
fn jobs_cluster_in_neighbourhoods() {
    // Clustered demand: many more jobs share a small cell than a uniform spread would put.
    let problem = generate(&config(City::SaoPaulo, 10, 2000, 1, 4));
    let mut cells: HashMap<(i64, i64), usize> = HashMap::new();
    for j in &problem.jobs {
        // Cells of about 1 km.
        *cells
            .entry(((j.place.lat * 100.0) as i64, (j.place.lon * 100.0) as i64))
            .or_default() += 1;
    }
    let busiest = cells.values().copied().max().unwrap();
    // A uniform spread over the 20 km circle (about 1250 cells) would average under 2.
    assert!(busiest >= 15, "busiest 1 km cell holds only {busiest} jobs");
    let neighbourhoods: BTreeSet<&str> = problem
        .jobs
        .iter()
        .map(|j| {
            j.place
                .address
                .as_deref()
                .unwrap()
                .rsplit(" — ")
                .next()
                .unwrap()
        })
        .collect();
    assert!(neighbourhoods.contains("Pinheiros") && neighbourhoods.contains("Itaquera"));
}

#[test]
fn a_tenth_of_technicians_have_a_closed_territory_around_their_home() {
    let problem = generate(&config(City::Lisbon, 50, 100, 1, 8));
    let with_territory: Vec<&Technician> = problem
        .technicians
        .iter()
        .filter(|t| t.territory.is_some())
        .collect();
    assert_eq!(with_territory.len(), 5);
    for t in with_territory {
        let Some(Territory::Polygon { coordinates }) = &t.territory else {
            panic!("{}: a polygon", t.id);
        };
        assert_eq!(coordinates.len(), 1, "one ring");
        let ring = &coordinates[0];
        assert!(
            ring.len() == 5 || ring.len() == 7,
            "{}: square or hexagon",
            t.id
        );
        assert_eq!(ring.first(), ring.last(), "{}: closed ring", t.id);
        for &[lon, lat] in ring {
            // [lon, lat] order: Lisbon is near 38.7° N, 9.15° W.
            assert!((-9.4..-8.9).contains(&lon) && (38.6..38.9).contains(&lat));
        }
        // Counter-clockwise (positive shoelace area), as RFC 7946 wants.
        let area: f64 = ring
            .windows(2)
            .map(|p| p[0][0] * p[1][1] - p[1][0] * p[0][1])
            .sum();
        assert!(area > 0.0, "{}", t.id);
        assert!(
            ring_contains(ring, t.home.lat, t.home.lon),
            "{}: lives inside",
            t.id
        );
    }
}

#[test]
fn every_job_has_an_unrestricted_technician_with_its_skills() {
    for (technicians, seed) in [(1, 1), (2, 2), (3, 3), (12, 4), (50, 5)] {
        for city in City::ALL {
            let problem = generate(&config(city, technicians, 300, 2, seed));
            for job in &problem.jobs {
                assert!(
                    problem
                        .technicians
                        .iter()
                        .any(|t| t.territory.is_none() && can_do(t, &job.required_skills)),
                    "{city}, {technicians} technicians: nobody can do {}",
                    job.id
                );
            }
        }
    }
}

#[test]
fn technician_skills_follow_the_workforce_mix() {
    let problem = generate(&config(City::SaoPaulo, 400, 50, 1, 12));
    let share = |skill: &str| {
        problem
            .technicians
            .iter()
            .filter(|t| t.skills.contains_key(skill))
            .count() as f64
            / 400.0
    };
    assert_eq!(share("pppoe"), 1.0);
    assert!((share("fiber_splicing") - 0.80).abs() <= 0.06);
    assert!((share("business_network") - 0.30).abs() <= 0.06);
    assert!((share("iptv") - 0.40).abs() <= 0.06);
}

#[test]
fn skill_catalogue_lists_exactly_the_skills_used() {
    let problem = generate(&config(City::Recife, 20, 300, 1, 2));
    let used: BTreeSet<String> = problem
        .technicians
        .iter()
        .flat_map(|t| t.skills.keys().cloned())
        .chain(
            problem
                .jobs
                .iter()
                .flat_map(|j| j.required_skills.keys().cloned()),
        )
        .collect();
    let catalogue: BTreeSet<String> = problem.skills.clone().unwrap().into_iter().collect();
    assert_eq!(catalogue, used);
    assert!(catalogue.contains("fiber_splicing") && catalogue.contains("pppoe"));
}

#[test]
fn lisbon_costs_are_a_fifth_of_the_brazilian_figures() {
    let problem = generate(&config(City::Lisbon, 30, 10, 1, 1));
    for t in &problem.technicians {
        assert!(
            (5.0..=8.0).contains(&t.cost_per_hour),
            "{}",
            t.cost_per_hour
        );
        assert!((0.12..=0.18).contains(&t.cost_per_km), "{}", t.cost_per_km);
    }
}

#[test]
fn the_problem_round_trips_through_json() {
    for city in City::ALL {
        let problem = generate(&config(city, 25, 400, 3, 17));
        let text = serde_json::to_string(&problem).unwrap();
        let back: ProblemInput = serde_json::from_str(&text).unwrap();
        assert_eq!(back, problem, "{city}");
    }
}

#[test]
fn on_site_work_averages_about_an_hour_a_job() {
    // The sizing note in the module docs rests on this: ~7 jobs fit a technician-day.
    let problem = generate(&config(City::SaoPaulo, 10, 3000, 1, 21));
    let mean = problem
        .jobs
        .iter()
        .map(|j| j.duration_minutes as f64)
        .sum::<f64>()
        / 3000.0;
    assert!((52.0..=66.0).contains(&mean), "mean on-site minutes {mean}");
}

#[test]
fn city_names_parse_in_their_usual_spellings() {
    for (text, city) in [
        ("sao-paulo", City::SaoPaulo),
        ("São Paulo", City::SaoPaulo),
        ("sao_paulo", City::SaoPaulo),
        ("SAO PAULO", City::SaoPaulo),
        ("recife", City::Recife),
        ("Recife", City::Recife),
        ("lisbon", City::Lisbon),
        ("Lisboa", City::Lisbon),
    ] {
        assert_eq!(text.parse::<City>().unwrap(), city, "{text}");
    }
    for city in City::ALL {
        assert_eq!(city.to_string().parse::<City>().unwrap(), city);
    }
    let error = "porto".parse::<City>().unwrap_err().to_string();
    for name in ["porto", "sao-paulo", "recife", "lisbon"] {
        assert!(error.contains(name), "{error}");
    }
}

#[test]
fn generated_problems_pass_validation() {
    for city in City::ALL {
        for (technicians, jobs, days, seed) in [
            (1, 10, 1, 1),
            (3, 40, 2, 2),
            (50, 600, 1, 3),
            (20, 300, 5, 4),
        ] {
            let problem = generate(&config(city, technicians, jobs, days, seed));
            if let Err(errors) = validate(&problem) {
                panic!("{city}, {technicians}×{jobs}×{days}: {errors}");
            }
        }
    }
    // Across the change to summer time too.
    let lisbon = GeneratorConfig {
        start_date: NaiveDate::from_ymd_opt(2026, 3, 28).unwrap(),
        ..config(City::Lisbon, 10, 200, 3, 5)
    };
    validate(&generate(&lisbon)).unwrap();
}
