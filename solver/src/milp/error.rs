//! The one error type of the MILP models.

/// Why a MILP model could not give an answer. Every variant says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MilpError {
    /// The model does not cover this kind of problem (yet).
    #[error("unsupported by this model: {reason}")]
    Unsupported { reason: String },
    /// Too many jobs for an exact model to be of any use.
    #[error("{jobs} jobs is more than this model accepts ({max}); use the heuristic search")]
    TooLarge { jobs: usize, max: usize },
    /// The input refers to something that does not exist or is malformed.
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// The model has no solution: no plan meets every constraint.
    #[error("the model is infeasible: no plan serves every job within its constraints")]
    Infeasible,
    /// The time limit ran out before the backend found any solution.
    #[error("no solution found within the time limit of {limit:?}; allow more time")]
    TimeLimit { limit: std::time::Duration },
    /// The backend failed (numerical trouble, internal error).
    #[error("the {backend} backend failed: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
    /// The backend's answer does not pass our own checks (a bug or numerical trouble).
    #[error("the backend's answer is inconsistent: {reason}")]
    Inconsistent { reason: String },
}
