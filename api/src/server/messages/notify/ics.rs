//! An iCalendar file (RFC 5545) of one booked visit, sent with confirmations and
//! reschedules so the customer can add it to a calendar: one `VEVENT`, times in UTC,
//! `UID` the booking id (a reschedule updates the same event, with a higher `SEQUENCE`).

use chrono::{DateTime, Utc};

/// What the calendar event says.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    pub booking_id: &'a str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// When the event was made (the outbox row's time, so every retry sends the same file).
    pub stamp: DateTime<Utc>,
    /// 0 for a booking, +1 per reschedule.
    pub sequence: u32,
    pub summary: &'a str,
    pub description: &'a str,
    pub location: Option<&'a str>,
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// TEXT value escaping (RFC 5545 §3.3.11).
fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A content line folded at 75 octets (§3.1), never inside a UTF-8 character.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

/// The `.ics` text of `event`.
pub fn calendar(event: &Event) -> String {
    let mut out = String::new();
    for l in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Despacho//Bookings//EN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
    ] {
        line(&mut out, l);
    }
    line(&mut out, &format!("UID:{}", text(event.booking_id)));
    line(&mut out, &format!("DTSTAMP:{}", utc(event.stamp)));
    line(&mut out, &format!("DTSTART:{}", utc(event.start)));
    line(&mut out, &format!("DTEND:{}", utc(event.end)));
    line(&mut out, &format!("SEQUENCE:{}", event.sequence));
    line(&mut out, "STATUS:CONFIRMED");
    line(&mut out, &format!("SUMMARY:{}", text(event.summary)));
    line(
        &mut out,
        &format!("DESCRIPTION:{}", text(event.description)),
    );
    if let Some(location) = event.location {
        line(&mut out, &format!("LOCATION:{}", text(location)));
    }
    line(&mut out, "END:VEVENT");
    line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn writes_one_utc_event_with_escaped_folded_lines() {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 11, 0, 0).unwrap();
        let long = "Olá, Maria! Sua visita de reparo está agendada para segunda-feira, 2 de março de 2026; até logo";
        let ics = calendar(&Event {
            booking_id: "bkg_1",
            start,
            end: start + chrono::TimeDelta::hours(2),
            stamp: start,
            sequence: 1,
            summary: "Visita, reparo",
            description: long,
            location: Some("Rua Augusta, 500"),
        });
        assert!(ics.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
        assert!(ics.contains("\r\nUID:bkg_1\r\n"));
        assert!(ics.contains("\r\nDTSTART:20260302T110000Z\r\nDTEND:20260302T130000Z\r\n"));
        assert!(ics.contains("SUMMARY:Visita\\, reparo\r\n"));
        assert!(ics.contains("LOCATION:Rua Augusta\\, 500\r\n"));
        assert!(ics.ends_with("END:VEVENT\r\nEND:VCALENDAR\r\n"));
        for l in ics.split("\r\n") {
            assert!(l.len() <= 75, "{l:?} is longer than 75 octets");
        }
        // Unfolding gives the escaped text back.
        let unfolded = ics.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("DESCRIPTION:{}", text(long))));
    }
}
