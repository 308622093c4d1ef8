//! E-mail, the second channel, and customers' preferences, each on SQLite and
//! PostgreSQL. Messages go over real SMTP to a sink written here (a tokio TCP listener
//! on 127.0.0.1:0 speaking EHLO/MAIL/RCPT/DATA/QUIT) and are decoded from their MIME.

use crate::common::world;

use crate::common::*;
use axum::http::StatusCode;
use base64::Engine;
use despacho_api::server::messages::notify::email::SmtpConfig;
use despacho_api::server::messages::worker::WorkerConfig;
use despacho_api::server::Role;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use world::*;

// ---------------------------------------------------------------------------------------
// The SMTP sink

#[derive(Clone, Debug, Default)]
struct Mail {
    from: String,
    to: Vec<String>,
    data: String,
}

#[derive(Default)]
struct SinkState {
    mails: Mutex<Vec<Mail>>,
    /// Replies to RCPT TO, in order; 250 once empty.
    rcpt_script: Mutex<VecDeque<u16>>,
    connections: Mutex<usize>,
}

struct Sink {
    port: u16,
    state: Arc<SinkState>,
}

fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

async fn converse(stream: tokio::net::TcpStream, st: Arc<SinkState>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut mail = Mail::default();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']).to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10000000\r\n".to_owned()
        } else if upper.starts_with("HELO") {
            "250 sink.test\r\n".to_owned()
        } else if upper.starts_with("MAIL FROM:") {
            mail = Mail {
                from: address(&command),
                ..Mail::default()
            };
            "250 2.1.0 OK\r\n".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            match st.rcpt_script.lock().unwrap().pop_front().unwrap_or(250) {
                250 => {
                    mail.to.push(address(&command));
                    "250 2.1.5 OK\r\n".to_owned()
                }
                code if code >= 500 => format!("{code} 5.1.1 no such mailbox here\r\n"),
                code => format!("{code} 4.3.0 mailbox busy, try again later\r\n"),
            }
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if lines.read_line(&mut l).await? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" {
                    break;
                }
                // Dot-unstuffing (RFC 5321 §4.5.2).
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            mail.data = data;
            st.mails.lock().unwrap().push(std::mem::take(&mut mail));
            "250 2.0.0 queued\r\n".to_owned()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 OK\r\n".to_owned()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 command not recognised\r\n".to_owned()
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

impl Sink {
    async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(SinkState::default());
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *st.connections.lock().unwrap() += 1;
                tokio::spawn(converse(stream, st.clone()));
            }
        });
        Sink { port, state }
    }

    fn config(&self) -> SmtpConfig {
        SmtpConfig::new(
            "127.0.0.1",
            self.port,
            "Fibra Rápida <visitas@fibra.example>",
        )
        .unwrap()
    }

    fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            smtp: Some(self.config()),
            ..crate::common::worker_config()
        }
    }

    fn mails(&self) -> Vec<Mail> {
        self.state.mails.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------
// Reading MIME (independently of the service)

#[derive(Debug, Default)]
struct Part {
    headers: BTreeMap<String, String>,
    body: String,
}

/// Headers (unfolded, names lower-cased) and the raw body.
fn split(text: &str) -> (BTreeMap<String, String>, String) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(name) = &last {
                headers.get_mut(name).unwrap().push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            headers.insert(name.clone(), value.trim().to_owned());
            last = Some(name);
        }
    }
    (headers, body.to_owned())
}

fn decode_body(headers: &BTreeMap<String, String>, body: &str) -> String {
    let encoding = headers
        .get("content-transfer-encoding")
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let bytes = match encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(body.split_whitespace().collect::<String>())
            .expect("valid base64"),
        "quoted-printable" => {
            quoted_printable::decode(body.as_bytes(), quoted_printable::ParseMode::Robust)
                .expect("valid quoted-printable")
        }
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8(bytes).expect("UTF-8 text")
}

/// An RFC 2047 header value (`=?utf-8?b?…?=` words) as text.
fn decode_header(value: &str) -> String {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let plain = &rest[..start];
        if !plain.trim().is_empty() {
            out.extend_from_slice(plain.as_bytes());
        }
        let word = &rest[start + 2..];
        let mut fields = word.splitn(3, '?');
        let (_charset, encoding, tail) = (fields.next(), fields.next(), fields.next());
        let (Some(encoding), Some(tail)) = (encoding, tail) else {
            break;
        };
        let end = tail.find("?=").expect("a closed encoded word");
        let text = &tail[..end];
        match encoding.to_ascii_lowercase().as_str() {
            "b" => out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap(),
            ),
            _ => out.extend(
                quoted_printable::decode(
                    text.replace('_', " ").as_bytes(),
                    quoted_printable::ParseMode::Robust,
                )
                .unwrap(),
            ),
        }
        rest = &tail[end + 2..];
    }
    out.extend_from_slice(rest.as_bytes());
    String::from_utf8(out).unwrap()
}

/// The message's headers and its leaf parts (one for a single-part message).
fn parse(data: &str) -> (BTreeMap<String, String>, Vec<Part>) {
    let (headers, body) = split(data);
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("multipart/") {
        let text = decode_body(&headers, &body);
        return (
            headers.clone(),
            vec![Part {
                headers,
                body: text,
            }],
        );
    }
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("a boundary")
        .trim_matches('"')
        .to_owned();
    let mut parts = Vec::new();
    for chunk in body.split(&format!("--{boundary}")).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.strip_prefix("\r\n").unwrap_or(chunk);
        let chunk = chunk.strip_suffix("\r\n").unwrap_or(chunk);
        let (h, b) = split(chunk);
        let body = decode_body(&h, &b);
        parts.push(Part { headers: h, body });
    }
    (headers, parts)
}

// ---------------------------------------------------------------------------------------
// Tests

/// "segunda-feira, 2 de março de 2026"-style month names, written independently.
const MESES: [&str; 12] = [
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
];

async fn a_confirmation_is_emailed_in_the_customers_language_with_the_calendar_attached(
    s: TestServer,
) {
    use chrono::Datelike;
    let w = world(s).await;
    let sink = Sink::start().await;
    w.customer(
        "c1",
        json!({"name": "Maria", "language": "pt-BR", "email": "maria@example.com",
               "preferred_channel": "email"}),
    )
    .await;
    let booking = w.book(&w.slot_at(10).await, Some("c1")).await;
    let (id, token) = (
        booking["id"].as_str().unwrap(),
        booking["token"].as_str().unwrap(),
    );
    let round = drain(&w.worker("w1", sink.worker_config())).await;
    assert_eq!(round.delivered, 1, "{round:?}");

    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail.from, "visitas@fibra.example");
    assert_eq!(mail.to, ["maria@example.com"]);
    let (headers, parts) = parse(&mail.data);
    let rows = outbox_rows(&w.s.state.db).await;
    let confirmation = rows.iter().find(|r| r.kind == "booking_confirmed").unwrap();
    assert_eq!(
        (confirmation.status.as_str(), confirmation.channel.as_str()),
        ("delivered", "email")
    );
    assert_eq!(
        decode_header(&headers["subject"]),
        format!("Sua visita está agendada ({token})")
    );
    assert_eq!(headers["content-language"], "pt-BR");
    assert_eq!(
        headers["message-id"],
        format!("<{}@despacho>", confirmation.id)
    );
    assert_eq!(headers["x-despacho-event-id"], confirmation.id);
    assert!(
        decode_header(&headers["from"]).contains("visitas@fibra.example"),
        "{headers:?}"
    );
    assert!(headers["to"].contains("maria@example.com"), "{headers:?}");
    assert!(
        headers["content-type"].starts_with("multipart/mixed"),
        "{headers:?}"
    );

    // The text, in Portuguese, São Paulo time.
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(parts[0].headers["content-type"].starts_with("text/plain"));
    let text = &parts[0].body;
    assert!(
        text.starts_with("Olá, Maria! Sua visita de reparo está agendada para "),
        "{text}"
    );
    let date = format!(
        "{} de {} de {}",
        w.day.day(),
        MESES[w.day.month0() as usize],
        w.day.year()
    );
    assert!(text.contains(&date), "{text} lacks {date}");
    assert!(
        text.ends_with(&format!("entre 10:00 e 12:00. Protocolo: {token}.")),
        "{text}"
    );

    // The calendar, attached.
    let ics = &parts[1];
    assert!(
        ics.headers["content-type"].starts_with("text/calendar"),
        "{:?}",
        ics.headers
    );
    assert!(ics.headers["content-type"].contains("method=PUBLISH"));
    assert!(
        ics.headers["content-disposition"].starts_with("attachment"),
        "{:?}",
        ics.headers
    );
    assert!(ics.headers["content-disposition"].contains(&format!("{token}.ics")));
    assert!(ics.body.starts_with("BEGIN:VCALENDAR\r\n"), "{}", ics.body);
    assert!(
        ics.body.contains(&format!("\r\nUID:{id}\r\n")),
        "{}",
        ics.body
    );
    assert!(ics.body.contains("\r\nSEQUENCE:0\r\n"), "{}", ics.body);
}

async fn a_cancellation_is_emailed_in_spanish_without_a_calendar(s: TestServer) {
    let w = world(s).await;
    let sink = Sink::start().await;
    w.customer(
        "c1",
        json!({"name": "Lucía", "language": "es", "email": "lucia@example.com",
               "preferred_channel": "email"}),
    )
    .await;
    let booking = w.book(&w.slot_at(14).await, Some("c1")).await;
    let id = booking["id"].as_str().unwrap();
    let token = booking["token"].as_str().unwrap();
    let r =
        w.s.post(
            &format!("/v1/bookings/{id}/cancel"),
            Some(&w.chatbot),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let round = drain(&w.worker("w1", sink.worker_config())).await;
    assert_eq!(round.delivered, 2, "{round:?}");
    let mails = sink.mails();
    let subjects: Vec<String> = mails
        .iter()
        .map(|m| decode_header(&parse(&m.data).0["subject"]))
        .collect();
    assert!(
        subjects.contains(&format!("Tu visita fue cancelada ({token})")),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&format!("Tu visita está reservada ({token})")),
        "{subjects:?}"
    );
    let cancelled = mails
        .iter()
        .find(|m| decode_header(&parse(&m.data).0["subject"]).starts_with("Tu visita fue"))
        .unwrap();
    let (headers, parts) = parse(&cancelled.data);
    assert_eq!(headers["content-language"], "es");
    assert!(
        headers["content-type"].starts_with("text/plain"),
        "no attachment on a cancellation: {headers:?}"
    );
    assert_eq!(parts.len(), 1);
    assert!(
        parts[0]
            .body
            .starts_with("Hola, Lucía. Cancelamos tu visita de reparación del "),
        "{}",
        parts[0].body
    );
    assert!(parts[0].body.contains("entre las 14:00 y las 16:00"));
}

async fn a_busy_mailbox_is_retried_and_a_refused_one_is_dead(s: TestServer) {
    let w = world(s).await;
    let sink = Sink::start().await;
    for (id, email) in [("c1", "busy@example.com"), ("c2", "gone@example.com")] {
        w.customer(
            id,
            json!({"email": email, "preferred_channel": "email", "language": "en"}),
        )
        .await;
    }
    // c1: 451 then accepted; c2 (booked after): 550.
    sink.state
        .rcpt_script
        .lock()
        .unwrap()
        .extend([451, 250, 550]);
    let first = w.book(&w.slot_at(8).await, Some("c1")).await;
    let worker = w.worker("w1", sink.worker_config());
    let round = drain(&worker).await;
    assert_eq!((round.delivered, round.retried), (1, 1), "{round:?}");
    let second = w.book(&w.slot_at(14).await, Some("c2")).await;
    let round = drain(&worker).await;
    assert_eq!(round.dead, 1, "{round:?}");

    let rows = outbox_rows(&w.s.state.db).await;
    let of = |b: &serde_json::Value| {
        rows.iter()
            .find(|r| r.booking_id == b["id"].as_str().unwrap() && r.kind == "booking_confirmed")
            .unwrap()
            .clone()
    };
    let busy = of(&first);
    assert_eq!(
        (busy.status.as_str(), busy.attempts),
        ("delivered", 2),
        "{busy:?}"
    );
    let gone = of(&second);
    assert_eq!(gone.status, "dead", "{gone:?}");
    let reason = gone.last_error.unwrap_or_default();
    assert!(
        reason.contains("550") || reason.contains("no such mailbox"),
        "{reason}"
    );
    // Both tries of c1 carried the same Message-ID.
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "only the accepted one arrived");
    assert!(mails[0].data.contains(&format!("<{}@despacho>", busy.id)));
}

async fn without_a_relay_or_an_address_e_mail_falls_back_to_the_webhook(s: TestServer) {
    let w = world(s).await;
    let sink = Sink::start().await;
    // Prefers e-mail but has no address; prefers e-mail but this worker has no relay;
    // has an address, opted out of the webhook, and no relay.
    w.customer("c1", json!({"preferred_channel": "email"}))
        .await;
    w.customer(
        "c2",
        json!({"preferred_channel": "email", "email": "c2@example.com"}),
    )
    .await;
    w.customer(
        "c3",
        json!({"email": "c3@example.com", "opt_out": ["webhook"]}),
    )
    .await;
    // One round each: the webhook would be retried until its attempts run out.
    let b1 = w.book(&w.slot_at(8).await, Some("c1")).await;
    let round = w
        .worker("with-smtp", sink.worker_config())
        .run_once()
        .await
        .unwrap();
    assert_eq!(round.retried, 1, "{round:?}");
    let b2 = w.book(&w.slot_at(12).await, Some("c2")).await;
    let b3 = w.book(&w.slot_at(14).await, Some("c3")).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    w.worker("no-smtp", crate::common::worker_config())
        .run_once()
        .await
        .unwrap();
    assert!(sink.mails().is_empty(), "{:?}", sink.mails());

    let rows = outbox_rows(&w.s.state.db).await;
    let confirmation = |b: &serde_json::Value| {
        rows.iter()
            .find(|r| r.booking_id == b["id"].as_str().unwrap() && r.kind == "booking_confirmed")
            .unwrap()
            .clone()
    };
    // No webhook endpoint is registered: the webhook's answer is "retry later".
    for b in [&b1, &b2] {
        let r = confirmation(b);
        assert_eq!(r.status, "pending", "{r:?}");
        assert!(
            r.last_error
                .as_deref()
                .unwrap_or("")
                .contains("no active webhook endpoint"),
            "{r:?}"
        );
    }
    let r = confirmation(&b3);
    assert_eq!(r.status, "suppressed", "{r:?}");
    assert!(
        r.last_error.as_deref().unwrap_or("").contains("webhook"),
        "{r:?}"
    );

    // The same customer, once a relay is there: e-mail.
    drain(&w.worker("smtp-again", sink.worker_config())).await;
    let to: Vec<Vec<String>> = sink.mails().into_iter().map(|m| m.to).collect();
    assert_eq!(to, [vec!["c2@example.com".to_owned()]]);
}

async fn customers_change_their_address_and_preferences(s: TestServer) {
    let w = world(s).await;
    w.customer("c1", json!({"language": "en"})).await;
    let path = "/v1/customers/c1";
    let patch = |body: serde_json::Value| {
        let s = &w.s;
        let key = w.chatbot.clone();
        async move {
            s.call(
                axum::http::Method::PATCH,
                path,
                Some(&key),
                Some(("application/json", serde_json::to_vec(&body).unwrap())),
            )
            .await
        }
    };
    let r = patch(json!({"email": " Maria@Example.com ", "language": "pt_br",
                         "preferred_channel": "email", "opt_out": ["webhook", "webhook"]}))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["email"], "Maria@Example.com");
    assert_eq!(r.json["language"], "pt-BR");
    assert_eq!(r.json["preferred_channel"], "email");
    assert_eq!(r.json["opt_out"], json!(["webhook"]));
    assert_eq!(r.json["name"], "Maria Souza", "untouched fields stay");

    // Absent stays, null clears.
    let r = patch(json!({"language": null, "opt_out": null})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["language"], serde_json::Value::Null);
    assert_eq!(r.json["opt_out"], json!([]));
    assert_eq!(r.json["email"], "Maria@Example.com");
    assert_eq!(r.json["preferred_channel"], "email");
    let stored = w.s.get(path, Some(&w.chatbot)).await;
    assert_eq!(stored.json, r.json);

    // Every problem, by path; nothing changes.
    let r = patch(
        json!({"email": "nobody", "language": "de", "preferred_channel": "sms",
                         "opt_out": ["email", "pigeon"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.paths(),
        [
            "$.email",
            "$.language",
            "$.preferred_channel",
            "$.opt_out[1]"
        ]
    );
    let r = patch(json!({"name": "Other"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.name"]);
    let r = patch(json!({"opt_out": "webhook"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.paths(), ["$.opt_out"]);
    let r = patch(json!([1])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(w.s.get(path, Some(&w.chatbot)).await.json, stored.json);

    let r =
        w.s.call(
            axum::http::Method::PATCH,
            "/v1/customers/nobody",
            Some(&w.chatbot),
            Some(("application/json", b"{\"language\": \"es\"}".to_vec())),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let technician = w.s.key(Role::Technician, Some("t1")).await.1;
    let r =
        w.s.call(
            axum::http::Method::PATCH,
            path,
            Some(&technician),
            Some(("application/json", b"{\"language\": \"es\"}".to_vec())),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

both_backends!(
    a_confirmation_is_emailed_in_the_customers_language_with_the_calendar_attached,
    a_cancellation_is_emailed_in_spanish_without_a_calendar,
    a_busy_mailbox_is_retried_and_a_refused_one_is_dead,
    without_a_relay_or_an_address_e_mail_falls_back_to_the_webhook,
    customers_change_their_address_and_preferences,
);
