//! Micro-benchmarks of the search's hot paths on the Solomon fixtures:
//! the O(1) move evaluator (every relocate between granular neighbours of a
//! constructed plan) and one full local-search descent from that plan.
//!
//! `cargo bench -p despacho-benches --bench search`

use criterion::{criterion_group, criterion_main, Criterion};
use despacho_solver::bench_support::SearchBench;
use despacho_solver::read_solomon;
use std::hint::black_box;
use std::path::Path;

fn fixture(name: &str) -> despacho_solver::SolomonInstance {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/solomon")
        .join(name);
    read_solomon(&path).expect("fixture instance reads")
}

fn move_evaluator(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate_relocates");
    for name in ["R101.txt", "RC208.txt"] {
        let instance = fixture(name);
        let bench = SearchBench::new(&instance.problem, 1);
        group.bench_function(instance.name.clone(), |b| {
            b.iter(|| black_box(bench.evaluate_relocates(&instance.problem)))
        });
    }
    group.finish();
}

fn local_search_pass(c: &mut Criterion) {
    let mut group = c.benchmark_group("local_search_pass");
    group.sample_size(20);
    for name in ["R101.txt", "RC208.txt"] {
        let instance = fixture(name);
        let bench = SearchBench::new(&instance.problem, 1);
        group.bench_function(instance.name.clone(), |b| {
            b.iter(|| black_box(bench.local_search_pass(&instance.problem)))
        });
    }
    group.finish();
}

criterion_group!(benches, move_evaluator, local_search_pass);
criterion_main!(benches);
