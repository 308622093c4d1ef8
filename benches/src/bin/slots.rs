//! Slot-search latency: a generated operation (technicians × days) with visits already
//! booked (a planned, feasible set), then random customer requests timed one by one.
//!
//! `cargo run --release -p despacho-benches --bin slots -- --technicians 100 --days 14 --booked 1500`
//!
//! Prints p50/p90/p99/max of `search_slots` and writes a Markdown table to benches/results/.

use anyhow::{Context, Result};
use clap::Parser;
use despacho_benches::output::{free_result_paths, hostname};
use despacho_solver::field::generate::{generate, City, GeneratorConfig};
use despacho_solver::field::input::{JobKind, Place};
use despacho_solver::field::slots::{
    search_slots, BookedVisit, Operation, SlotAnswer, SlotRequest,
};
use despacho_solver::field::solve::solve_field;
use despacho_solver::SolverConfig;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 100)]
    technicians: usize,
    #[arg(long, default_value_t = 14)]
    days: usize,
    /// Visits to book before timing (planned by the solver, so they fit together).
    #[arg(long, default_value_t = 1500)]
    booked: usize,
    /// Requests to time.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Days each request looks at.
    #[arg(long, default_value_t = 7)]
    request_days: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    no_save: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let start_date = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).context("date")?;
    let input = generate(&GeneratorConfig {
        technicians: args.technicians,
        jobs: args.booked,
        days: args.days,
        seed: args.seed,
        city: City::SaoPaulo,
        start_date,
    });
    // Book what a planner can fit: the solved plan's visits, each in its own window.
    let started = Instant::now();
    let solved = solve_field(
        &input,
        None,
        &SolverConfig {
            seed: args.seed,
            time_limit: Some(Duration::from_secs(20)),
            ..SolverConfig::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut bookings = Vec::new();
    for route in &solved.plan.routes {
        for stop in &route.stops {
            let job = input
                .jobs
                .iter()
                .find(|j| j.id == stop.job)
                .context("planned job")?;
            let start = chrono::DateTime::parse_from_rfc3339(&stop.start)?;
            let mut job = job.clone();
            // The promised window: the one the visit starts in.
            job.windows.retain(|w| w.start <= start && start <= w.end);
            job.sla_due = None;
            bookings.push(BookedVisit {
                job,
                technician: route.technician.clone(),
                date: route.date,
            });
        }
    }
    eprintln!(
        "setup: {} visits booked over {} technicians × {} days in {:.1} s",
        bookings.len(),
        args.technicians,
        args.days,
        started.elapsed().as_secs_f64()
    );
    let op = Operation {
        time_zone: input.time_zone.clone(),
        travel: input.travel.clone(),
        technicians: input.technicians.clone(),
        repair_reserve: 0.1,
    };
    let mut rng = fastrand::Rng::with_seed(args.seed + 7);
    let mut times = Vec::with_capacity(args.requests);
    let mut offered = 0usize;
    for _ in 0..args.requests {
        // Requests near real demand: around a booked visit's place.
        let near = &bookings[rng.usize(0..bookings.len())].job.place;
        let req = SlotRequest {
            place: Place {
                lat: near.lat + 0.01 * (rng.f64() - 0.5),
                lon: near.lon + 0.01 * (rng.f64() - 0.5),
                address: None,
                location_id: None,
            },
            kind: if rng.bool() {
                JobKind::Repair
            } else {
                JobKind::Installation
            },
            tier: Default::default(),
            duration_minutes: 30 + 15 * rng.u32(0..5),
            required_skills: BTreeMap::from([("pppoe".to_string(), 1)]),
            equipment: Default::default(),
            earliest_day: start_date + chrono::TimeDelta::days(rng.i64(0..args.days as i64)),
            days: args.request_days,
            window_minutes: 120,
        };
        let t = Instant::now();
        let answer = search_slots(&op, &bookings, &req, 10).map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed());
        if let SlotAnswer::Slots(s) = answer {
            offered += usize::from(!s.is_empty());
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    let table = format!(
        "| technicians | days | booked | requests | days per request | p50 ms | p90 ms | p99 ms | max ms | requests with offers |\n|---|---|---|---|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |\n",
        args.technicians,
        args.days,
        bookings.len(),
        args.requests,
        args.request_days,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0),
        offered
    );
    println!("{table}");
    if !args.no_save {
        let dir = despacho_benches::default_results_dir();
        let now = chrono::Local::now();
        let stem = format!("slots-{}-{}", now.format("%Y-%m-%d"), hostname());
        let (_, md) = free_result_paths(&dir, &stem, &now.format("%H%M").to_string());
        let header = "# Slot search latency (`search_slots`, one thread, in-process)\n\nEach request examines the nearest 12 working technicians per day over its days; every candidate 2-hour window is checked by inserting the visit into that technician-day's route with the route evaluator.\n\n";
        std::fs::write(&md, format!("{header}{table}"))?;
        println!("wrote {}", md.display());
    }
    Ok(())
}
