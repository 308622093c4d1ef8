//! Entry points for micro-benchmarks of the search internals and for bench runners
//! (not a stable API).

pub mod field_exact;

use crate::model::Problem;
use crate::search::internals::Evaluator;
use crate::units::Cost;

/// A constructed plan ready for timing move evaluation and local search on it.
pub struct SearchBench {
    inner: Evaluator,
}

impl SearchBench {
    /// Builds a plan for `problem` by greedy insertion (no improvement yet).
    pub fn new(problem: &Problem, seed: u64) -> Self {
        Self {
            inner: Evaluator::new(problem, seed),
        }
    }

    /// Prices "relocate `u` after `v`" for every job `u` and each granular neighbour
    /// `v` (the evaluator's hot path). Returns how many moves would improve.
    pub fn evaluate_relocates(&self, problem: &Problem) -> usize {
        self.inner.evaluate_relocates(problem)
    }

    /// One full local-search descent from the constructed plan; returns its cost.
    pub fn local_search_pass(&self, problem: &Problem) -> Cost {
        self.inner.local_search_pass(problem)
    }
}
