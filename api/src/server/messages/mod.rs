//! Customer messages and what they start: the transactional outbox, its worker,
//! templates and channels ([`notify`]), webhook endpoints, customers' replies
//! ([`inbound`]), the dispatchers' queue, visit events and job status facts
//! (docs/messages.md).

pub mod dispatcher_queue;
pub mod inbound;
pub mod job_lifecycle;
pub mod notify;
pub mod outbox;
pub mod visit_events;
pub mod webhook_endpoints;
pub mod worker;
