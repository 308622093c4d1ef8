//! The one place that knows which LP/MILP backend is used.
//!
//! Models are built backend-independently as a [`Model`] and solved here. The
//! default is `microlp` (pure Rust); the crate feature `highs` switches every
//! model to HiGHS.

use super::MilpError;
use good_lp::{
    Constraint, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus,
    SolverModel, Variable, WithInitialSolution, WithMipGap, WithTimeLimit,
};

/// Name of the backend compiled in.
#[cfg(not(feature = "highs"))]
pub const BACKEND_NAME: &str = "microlp";
/// Name of the backend compiled in.
#[cfg(feature = "highs")]
pub const BACKEND_NAME: &str = "highs";

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
        let unsolved = self.vars.minimise(self.objective);
        #[cfg(not(feature = "highs"))]
        let backend = unsolved.using(good_lp::microlp);
        #[cfg(feature = "highs")]
        let backend = unsolved.using(good_lp::highs);
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
    // Prove optimality, not a relative gap (HiGHS defaults to 1e-4).
    let backend = backend.with_mip_gap(0.0).map_err(|e| MilpError::Backend {
        backend: BACKEND_NAME,
        message: e.to_string(),
    })?;
    match backend.solve() {
        Ok(solution) => Ok(Solved {
            proven_optimal: matches!(solution.status(), SolutionStatus::Optimal),
            values: Box::new(solution),
        }),
        Err(ResolutionError::Infeasible) => Err(MilpError::Infeasible),
        Err(ResolutionError::Other(message)) if message.starts_with("Time limit reached") => {
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
