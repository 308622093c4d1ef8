//! The one place that knows which LP/MILP backend is used.
//!
//! Models are built backend-independently as a [`Model`] and solved here. The
//! default is `microlp` (pure Rust, no system library); the crate feature `highs`
//! switches every model to HiGHS (built from source by `highs-sys`: needs cmake, a
//! C++ compiler and libclang at build time). Everything that differs between the
//! two lives in the `active` module below: the name, the solver function and how a
//! time-limit stop without any solution is reported.
//!
//! Both backends get the same settings: the time limit, a relative MIP gap of zero
//! (prove optimality; HiGHS would stop at 1e-4 otherwise) and the warm start.

use super::MilpError;
use good_lp::{
    Constraint, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus,
    SolverModel, Variable, WithInitialSolution, WithMipGap, WithTimeLimit,
};

/// Name of the backend compiled in ("microlp" or "highs").
pub const BACKEND_NAME: &str = active::NAME;

#[cfg(not(feature = "highs"))]
mod active {
    use good_lp::solvers::microlp::MicroLpProblem;
    use good_lp::variable::UnsolvedProblem;
    use good_lp::ResolutionError;

    pub const NAME: &str = "microlp";

    pub fn solver(problem: UnsolvedProblem) -> MicroLpProblem {
        good_lp::microlp(problem)
    }

    /// microlp says so in words when its time limit ran out before any solution.
    pub fn stopped_without_solution(error: &ResolutionError) -> bool {
        matches!(error, ResolutionError::Other(m) if m.starts_with("Time limit reached"))
    }
}

#[cfg(feature = "highs")]
mod active {
    use good_lp::solvers::highs::HighsProblem;
    use good_lp::variable::UnsolvedProblem;
    use good_lp::ResolutionError;

    pub const NAME: &str = "highs";

    /// HiGHS with two settings, both measured (docs/milp.md, "Backends, measured"):
    /// - presolve without probing (`presolve_rule_off` bit 15): probing checks the
    ///   time limit too rarely; on a set-partitioning model of 8383 routes it alone
    ///   ran 13-29 s against a 10 s limit, and switching it off did not slow the
    ///   exact model;
    /// - one thread, like the search and like microlp (by default HiGHS starts a
    ///   worker per core and runs a second root LP solver on it).
    pub fn solver(problem: UnsolvedProblem) -> HighsProblem {
        good_lp::highs(problem)
            .set_option("presolve_rule_off", 1 << 15)
            .set_threads(1)
    }

    /// good_lp maps every HiGHS "reached a limit" status to a solution, and answers
    /// `NoSolutionFound` when that status comes without a primal feasible point. The
    /// only limit set here is the time limit, so this is a time-limit stop.
    pub fn stopped_without_solution(error: &ResolutionError) -> bool {
        matches!(error, ResolutionError::Other("NoSolutionFound"))
    }
}

/// A minimisation model, ready to hand to the backend.
pub(crate) struct Model {
    pub vars: ProblemVariables,
    pub objective: Expression,
    pub constraints: Vec<Constraint>,
    /// A starting solution (values for some or all variables); backends may ignore it.
    pub initial: Vec<(Variable, f64)>,
    pub time_limit: Option<std::time::Duration>,
}

/// What the backend returned.
pub(crate) struct Solved {
    pub values: Box<dyn Solution>,
    /// The backend proved optimality (gap zero), rather than stopping at the time limit.
    pub proven_optimal: bool,
}

impl Model {
    pub fn new(vars: ProblemVariables, objective: Expression) -> Self {
        Self {
            vars,
            objective,
            constraints: Vec::new(),
            initial: Vec::new(),
            time_limit: None,
        }
    }

    pub fn add(&mut self, constraint: Constraint) {
        self.constraints.push(constraint);
    }

    pub fn solve(self) -> Result<Solved, MilpError> {
        let backend = active::solver(self.vars.minimise(self.objective));
        run(backend, self.constraints, self.initial, self.time_limit)
    }
}

fn run<M>(
    mut backend: M,
    constraints: Vec<Constraint>,
    initial: Vec<(Variable, f64)>,
    time_limit: Option<std::time::Duration>,
) -> Result<Solved, MilpError>
where
    M: SolverModel<Error = ResolutionError> + WithInitialSolution + WithTimeLimit + WithMipGap,
    M::Solution: 'static,
{
    for c in constraints {
        backend.add_constraint(c);
    }
    if !initial.is_empty() {
        backend = backend.with_initial_solution(initial);
    }
    if let Some(limit) = time_limit {
        backend = backend.with_time_limit(limit.as_secs_f64());
    }
    let backend = backend.with_mip_gap(0.0).map_err(|e| MilpError::Backend {
        backend: BACKEND_NAME,
        message: e.to_string(),
    })?;
    match backend.solve() {
        Ok(solution) => Ok(Solved {
            // With a gap of zero requested, a gap stop is a proof too: microlp stops
            // at a gap ≤ 0, HiGHS also at an absolute gap ≤ 1e-6 (and then reports
            // the tiny relative gap left rather than "optimal").
            proven_optimal: matches!(
                solution.status(),
                SolutionStatus::Optimal | SolutionStatus::GapLimit
            ),
            values: Box::new(solution),
        }),
        Err(ResolutionError::Infeasible) => Err(MilpError::Infeasible),
        Err(e) if time_limit.is_some() && active::stopped_without_solution(&e) => {
            Err(MilpError::TimeLimit {
                limit: time_limit.unwrap_or_default(),
            })
        }
        Err(e) => Err(MilpError::Backend {
            backend: BACKEND_NAME,
            message: e.to_string(),
        }),
    }
}

/// A 0/1 variable's value read as a decision (robust to solver tolerances).
pub(crate) fn is_one(values: &dyn Solution, v: Variable) -> bool {
    values.value(v) > 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use good_lp::variable;
    use std::time::Duration;

    #[test]
    fn the_name_is_the_backend_compiled_in() {
        let expected = if cfg!(feature = "highs") {
            "highs"
        } else {
            "microlp"
        };
        assert_eq!(BACKEND_NAME, expected);
        assert_eq!(crate::MILP_BACKEND, expected);
    }

    /// A 0/1 knapsack written as a minimisation (minimise the value left out): big
    /// enough that neither backend proves optimality in no time at all.
    fn knapsack(items: usize) -> (Model, Vec<Variable>) {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut vars = ProblemVariables::new();
        let x: Vec<Variable> = (0..items).map(|_| vars.add(variable().binary())).collect();
        let value: Vec<f64> = (0..items).map(|_| rng.u32(100..1000) as f64).collect();
        let weight: Vec<f64> = (0..items).map(|_| rng.u32(100..1000) as f64).collect();
        let objective: Expression = x.iter().zip(&value).map(|(&v, &c)| c * (1 - v)).sum();
        let mut model = Model::new(vars, objective);
        let used: Expression = x.iter().zip(&weight).map(|(&v, &w)| w * v).sum();
        model.add(used.leq(weight.iter().sum::<f64>() / 3.0));
        (model, x)
    }

    #[test]
    fn proves_optimality_of_a_small_model() {
        let (model, x) = knapsack(8);
        let solved = model.solve().unwrap();
        assert!(solved.proven_optimal);
        assert!(x.iter().any(|&v| is_one(solved.values.as_ref(), v)));
    }

    #[test]
    fn reports_infeasibility() {
        let mut vars = ProblemVariables::new();
        let a = vars.add(variable().binary());
        let b = vars.add(variable().binary());
        let mut model = Model::new(vars, Expression::from(a) + b);
        model.add((a + b).geq(3));
        assert_eq!(model.solve().err(), Some(MilpError::Infeasible));
    }

    #[test]
    fn a_zero_time_limit_without_a_start_is_a_time_limit_error_or_an_unproven_answer() {
        let (mut model, _) = knapsack(400);
        model.time_limit = Some(Duration::ZERO);
        match model.solve() {
            Err(MilpError::TimeLimit { limit }) => assert_eq!(limit, Duration::ZERO),
            Ok(solved) => assert!(!solved.proven_optimal),
            Err(e) => panic!("a time-limit stop must not be reported as {e}"),
        }
    }

    #[test]
    fn the_time_limit_stops_a_hard_model_and_keeps_the_warm_start() {
        let (mut model, x) = knapsack(400);
        // Take nothing: feasible, and the worst answer there is.
        model.initial = x.iter().map(|&v| (v, 0.0)).collect();
        model.time_limit = Some(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let result = model.solve();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the time limit was not honoured: {:?}",
            started.elapsed()
        );
        // The warm start is a solution, so a stop still has one to report.
        if let Err(e) = result {
            panic!("a stop with a feasible warm start must return a solution, not {e}");
        }
    }
}
