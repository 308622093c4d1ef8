//! The HTTP platform: errors, API keys and roles, request bodies, pagination, the
//! accept loop with its limits, health checks, and the state every handler shares.
//! Imports only [`super::store`].

pub mod auth;
pub mod body;
pub mod error;
pub mod health;
pub mod listener;
pub mod pagination;
pub mod solver_schemas;
pub mod state;
