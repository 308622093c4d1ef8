//! Customers' bookings: the slot search with sealed tokens, holds, bookings with
//! idempotency, reschedule and cancel (docs/booking.md), and the views they answer with.

pub mod booking_views;
pub mod bookings;
