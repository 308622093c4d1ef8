//! E-mail over SMTP, the second channel (`lettre`, plain SMTP without TLS).
//!
//! Configured per process (`despacho serve` / `despacho worker` flags `--smtp-host`,
//! `--smtp-port`, `--smtp-from`): the e-mail channel exists only where it is set, and
//! reaches only customers with an e-mail address. The server is meant to be a local
//! relay (a mail transfer agent on the host or the private network) that does TLS and
//! authentication onwards; this build carries no TLS stack.
//!
//! One message per outbox row: `text/plain; charset=utf-8` with the rendered text, a
//! subject in the same language, `Content-Language`, a `Message-ID` made from the event
//! id (`<evt_…@despacho>`, the same on every retry, so mail systems and people can drop
//! duplicates) and the `X-Despacho-Event-Id` header. Confirmations and reschedules carry
//! the visit's `.ics` as an attachment (`text/calendar; method=PUBLISH`).
//!
//! Answers: accepted → delivered; a permanent SMTP refusal (5xx) → dead, with the
//! server's words; anything else (4xx, timeout, connection refused) → retry later.

use super::templates::MessageKind;
use super::webhook::Delivery;
use clap::Args;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// The header that carries the outbox event id.
pub const EVENT_ID_HEADER: &str = "X-Despacho-Event-Id";

/// SMTP flags of `despacho serve` and `despacho worker`.
#[derive(Debug, Clone, Default, Args)]
pub struct SmtpArgs {
    /// SMTP relay for e-mail to customers (plain SMTP, no TLS: a local or private-network
    /// relay). Without it there is no e-mail channel.
    #[arg(long, value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// Port of the SMTP relay.
    #[arg(long, value_name = "PORT", default_value_t = 25)]
    pub smtp_port: u16,
    /// Sender of customer e-mail, e.g. "Fibra Rápida <visitas@fibra.example>"; required
    /// with --smtp-host.
    #[arg(long, value_name = "MAILBOX")]
    pub smtp_from: Option<String>,
}

impl SmtpArgs {
    /// The SMTP configuration, `None` without `--smtp-host`; an error names the flag.
    pub fn config(&self) -> Result<Option<SmtpConfig>, String> {
        match (&self.smtp_host, &self.smtp_from) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err("--smtp-from needs --smtp-host".to_owned()),
            (Some(_), None) => Err("--smtp-host needs --smtp-from (the sender)".to_owned()),
            (Some(host), Some(from)) => SmtpConfig::new(host, self.smtp_port, from).map(Some),
        }
    }
}

/// Where and as whom e-mail is sent.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub from: Mailbox,
    /// Whole conversation with the relay.
    pub timeout: Duration,
}

impl SmtpConfig {
    /// `from` is a mailbox (`Name <address>` or a bare address); an error says what is wrong.
    pub fn new(host: &str, port: u16, from: &str) -> Result<SmtpConfig, String> {
        let host = host.trim();
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("--smtp-host `{host}` is not a host name"));
        }
        if port == 0 {
            return Err("--smtp-port must be 1 to 65535".to_owned());
        }
        let from: Mailbox = from
            .trim()
            .parse()
            .map_err(|e| format!("--smtp-from `{from}` is not a mailbox: {e}"))?;
        Ok(SmtpConfig {
            host: host.to_owned(),
            port,
            from,
            timeout: Duration::from_secs(10),
        })
    }

    /// The transport (one connection per message; nothing is opened yet).
    pub fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .timeout(Some(self.timeout))
            .hello_name(ClientId::Domain("despacho.local".to_owned()))
            .build()
    }
}

/// Whether `address` is an e-mail address the SMTP client accepts (for customers).
pub fn valid_address(address: &str) -> bool {
    address.parse::<Address>().is_ok()
}

/// One customer e-mail.
#[derive(Clone, Debug)]
pub struct Email<'a> {
    pub event_id: &'a str,
    pub to_name: &'a str,
    pub to_address: &'a str,
    pub subject: String,
    pub text: &'a str,
    pub language: &'a str,
    /// File name and content of the calendar attachment.
    pub ics: Option<(String, String)>,
}

/// The message of `email` from `from`; an error when an address is not usable.
pub fn message(from: &Mailbox, email: &Email) -> Result<Message, String> {
    let address: Address = email.to_address.parse().map_err(|e| {
        format!(
            "the customer's e-mail `{}` is not usable: {e}",
            email.to_address
        )
    })?;
    let to = Mailbox::new(Some(email.to_name.to_owned()), address);
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}@despacho>", email.event_id)));
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(email.text.to_owned());
    let built = match &email.ics {
        None => builder.singlepart(text),
        Some((name, ics)) => {
            let calendar = ContentType::parse("text/calendar; charset=utf-8; method=PUBLISH")
                .map_err(|e| format!("calendar content type: {e}"))?;
            let attachment = Attachment::new(name.clone()).body(ics.clone(), calendar);
            builder.multipart(MultiPart::mixed().singlepart(text).singlepart(attachment))
        }
    };
    let mut message = built.map_err(|e| format!("cannot build the e-mail: {e}"))?;
    let headers = message.headers_mut();
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("Content-Language"),
        email.language.to_owned(),
    ));
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str(EVENT_ID_HEADER),
        email.event_id.to_owned(),
    ));
    Ok(message)
}

/// Sends `email` through `transport`.
pub async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    config: &SmtpConfig,
    email: &Email<'_>,
) -> Delivery {
    let message = match message(&config.from, email) {
        Ok(m) => m,
        Err(reason) => return Delivery::Permanent(reason),
    };
    let relay = format!("smtp://{}:{}", config.host, config.port);
    match transport.send(message).await {
        Ok(_) => Delivery::Delivered,
        Err(e) if e.is_permanent() => Delivery::Permanent(format!("{relay} refused: {e}")),
        Err(e) => Delivery::Retry(format!("{relay}: {e}")),
    }
}

/// The subject of a `kind` message in `language` (the language the text was rendered
/// in: `en`, `es` or `pt-BR`; English otherwise), followed by the booking reference.
pub fn subject(kind: MessageKind, language: &str, reference: &str) -> String {
    let text = match (language, kind) {
        ("es", MessageKind::BookingConfirmed) => "Tu visita está reservada",
        ("es", MessageKind::BookingRescheduled) => "Tu visita cambió de horario",
        ("es", MessageKind::BookingCancelled) => "Tu visita fue cancelada",
        ("es", MessageKind::BookingReminder) => "Recordatorio de tu visita",
        ("es", MessageKind::TechnicianEnRoute) => "El técnico va en camino",
        ("es", MessageKind::TechnicianRunningLate) => "El técnico viene con retraso",
        ("es", MessageKind::SurveyRequest) => "¿Qué tal tu visita?",
        ("es", MessageKind::MissedVisit) => "No te encontramos: elige un nuevo horario",
        ("es", MessageKind::EquipmentReturnReminder) => "Devolución de tu equipo",
        ("pt-BR", MessageKind::BookingConfirmed) => "Sua visita está agendada",
        ("pt-BR", MessageKind::BookingRescheduled) => "Sua visita mudou de horário",
        ("pt-BR", MessageKind::BookingCancelled) => "Sua visita foi cancelada",
        ("pt-BR", MessageKind::BookingReminder) => "Lembrete da sua visita",
        ("pt-BR", MessageKind::TechnicianEnRoute) => "O técnico está a caminho",
        ("pt-BR", MessageKind::TechnicianRunningLate) => "O técnico está atrasado",
        ("pt-BR", MessageKind::SurveyRequest) => "Como foi sua visita?",
        ("pt-BR", MessageKind::MissedVisit) => "Não encontramos você: escolha um novo horário",
        ("pt-BR", MessageKind::EquipmentReturnReminder) => "Devolução do seu equipamento",
        (_, MessageKind::BookingConfirmed) => "Your visit is booked",
        (_, MessageKind::BookingRescheduled) => "Your visit has moved",
        (_, MessageKind::BookingCancelled) => "Your visit is cancelled",
        (_, MessageKind::BookingReminder) => "Reminder of your visit",
        (_, MessageKind::TechnicianEnRoute) => "Your technician is on the way",
        (_, MessageKind::TechnicianRunningLate) => "Your technician is running late",
        (_, MessageKind::SurveyRequest) => "How was your visit?",
        (_, MessageKind::MissedVisit) => "We missed you: choose a new time",
        (_, MessageKind::EquipmentReturnReminder) => "Returning your equipment",
    };
    format!("{text} ({reference})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_flags_need_a_host_and_a_sender_together() {
        let args = |host: Option<&str>, from: Option<&str>| SmtpArgs {
            smtp_host: host.map(str::to_owned),
            smtp_port: 2525,
            smtp_from: from.map(str::to_owned),
        };
        assert!(args(None, None).config().unwrap().is_none());
        assert!(args(Some("localhost"), None).config().is_err());
        assert!(args(None, Some("a@b.example")).config().is_err());
        let err = args(Some("localhost"), Some("not a mailbox"))
            .config()
            .unwrap_err();
        assert!(err.contains("--smtp-from"), "{err}");
        let c = args(Some("localhost"), Some("Fibra <visitas@fibra.example>"))
            .config()
            .unwrap()
            .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("localhost", 2525));
        assert_eq!(c.from.email.to_string(), "visitas@fibra.example");
    }

    #[test]
    fn builds_a_message_with_the_calendar_attached() {
        let from: Mailbox = "Fibra <visitas@fibra.example>".parse().unwrap();
        let email = Email {
            event_id: "evt_1",
            to_name: "Maria",
            to_address: "maria@example.com",
            subject: subject(MessageKind::BookingConfirmed, "pt-BR", "bkt_1"),
            text: "Olá, Maria!",
            language: "pt-BR",
            ics: Some(("visita.ics".to_owned(), "BEGIN:VCALENDAR\r\n".to_owned())),
        };
        let raw = String::from_utf8(message(&from, &email).unwrap().formatted()).unwrap();
        assert!(raw.contains("Message-ID: <evt_1@despacho>"), "{raw}");
        assert!(raw.contains("Content-Language: pt-BR"), "{raw}");
        assert!(raw.contains("X-Despacho-Event-Id: evt_1"), "{raw}");
        assert!(raw.contains("multipart/mixed"), "{raw}");
        assert!(raw.contains("filename=\"visita.ics\""), "{raw}");
        let bad = Email {
            to_address: "nobody",
            ..email
        };
        assert!(message(&from, &bad).is_err());
    }

    #[test]
    fn every_kind_has_a_subject_in_each_language() {
        for kind in MessageKind::ALL {
            let en = subject(kind, "en", "r");
            for language in ["es", "pt-BR"] {
                assert_ne!(subject(kind, language, "r"), en, "{kind} {language}");
            }
        }
        assert_eq!(
            subject(MessageKind::BookingCancelled, "fr", "bkt_9"),
            "Your visit is cancelled (bkt_9)"
        );
    }
}
