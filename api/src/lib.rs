//! # despacho-api
//!
//! Despacho's service crate and the `despacho` command. Today it holds the
//! command line ([`cli`]): `despacho solve` runs the solver on a Solomon file and
//! prints one JSON object. The HTTP service (booking, dispatch, sync) comes later.
//!
//! The solver runs as a pure function of its input; this crate owns everything
//! around it: reading files, validating arguments, checking the result with the
//! solver's independent checker, and the output format.

pub mod cli;
pub mod server;
