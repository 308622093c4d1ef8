//! Keyset pagination of lists: `?limit=100&after=<last id of the previous page>`.
//! Pages are ordered by id, so a page never shifts when rows are added meanwhile.

use crate::server::http::error::{ApiError, ErrorDetail};
use serde::Deserialize;
use utoipa::IntoParams;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 1000; default 100.
    pub limit: Option<u32>,
    /// Return items whose id sorts after this one (the `next_after` of the previous page).
    pub after: Option<String>,
}

impl ListQuery {
    /// The page size, or 400 `invalid_query` when it is out of range.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::BadRequest {
                code: "invalid_query",
                message: format!("limit {n} is not between 1 and {MAX_LIMIT}"),
                details: vec![ErrorDetail::new(
                    "limit",
                    "out_of_range",
                    format!("use 1 to {MAX_LIMIT}"),
                )],
            }),
        }
    }
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

impl<T> Page<T> {
    /// From up to `limit + 1` rows (the extra row only tells that there is more).
    pub fn new(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_after = if more { rows.last().map(key) } else { None };
        Page {
            items: rows,
            next_after,
        }
    }
}
