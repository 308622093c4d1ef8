//! Message templates: one per message kind and language (`en`, `es`, `pt-BR`), with
//! `{placeholder}`s filled at delivery in the customer's time zone, dates and times
//! written the way each language writes them (names of weekdays and months by hand:
//! three languages do not need an i18n library).
//!
//! Every template is parsed and checked when the service starts ([`builtin`], called by
//! `build_app` and `despacho worker`): an unknown placeholder, one the message kind
//! does not have, an unbalanced brace or a blank template is a start-up error, never a
//! failed send. The default language must have every kind, so a missing translation
//! falls back to it (after another region of the same language: `pt-PT` → `pt-BR`)
//! and a message is never blank.
//!
//! Syntax: `{name}` is a placeholder, `{{` and `}}` are literal braces.

use super::LANGUAGES;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use despacho_solver::field::input::JobKind;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

/// What a message says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    BookingConfirmed,
    BookingRescheduled,
    BookingCancelled,
    /// Before the visit, at each of the operation's reminder offsets.
    BookingReminder,
    /// The technician is on the way, with an ETA window (visit event `en_route`).
    TechnicianEnRoute,
    /// Running late, or the ETA changed: the new ETA window.
    TechnicianRunningLate,
    /// After a completed visit: CSAT 1–5 and NPS 0–10 (answered through the chat).
    SurveyRequest,
    /// A missed visit (customer absent, no access), with new slots offered.
    MissedVisit,
    /// A cancelled equipment return: have the equipment ready, or book a return visit.
    EquipmentReturnReminder,
}

impl MessageKind {
    pub const ALL: [MessageKind; 9] = [
        MessageKind::BookingConfirmed,
        MessageKind::BookingRescheduled,
        MessageKind::BookingCancelled,
        MessageKind::BookingReminder,
        MessageKind::TechnicianEnRoute,
        MessageKind::TechnicianRunningLate,
        MessageKind::SurveyRequest,
        MessageKind::MissedVisit,
        MessageKind::EquipmentReturnReminder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::BookingConfirmed => "booking_confirmed",
            MessageKind::BookingRescheduled => "booking_rescheduled",
            MessageKind::BookingCancelled => "booking_cancelled",
            MessageKind::BookingReminder => "booking_reminder",
            MessageKind::TechnicianEnRoute => "technician_en_route",
            MessageKind::TechnicianRunningLate => "technician_running_late",
            MessageKind::SurveyRequest => "survey_request",
            MessageKind::MissedVisit => "missed_visit",
            MessageKind::EquipmentReturnReminder => "equipment_return_reminder",
        }
    }

    pub fn parse(text: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a template may say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placeholder {
    CustomerName,
    /// The kind of visit, as a noun phrase ("repair visit", "visita de reparo").
    Visit,
    /// Local date of the window's start, long form.
    Date,
    Start,
    End,
    /// Before a reschedule (only in `booking_rescheduled`).
    PreviousDate,
    PreviousStart,
    PreviousEnd,
    /// The customer's booking reference (the booking token).
    Reference,
    /// The technician's ETA window, local times (`technician_en_route`,
    /// `technician_running_late`).
    EtaStart,
    EtaEnd,
    /// The new slots offered after a missed visit, each "date, start–end" (`missed_visit`).
    Slots,
}

const PLACEHOLDERS: [(&str, Placeholder); 12] = [
    ("customer_name", Placeholder::CustomerName),
    ("visit", Placeholder::Visit),
    ("date", Placeholder::Date),
    ("start", Placeholder::Start),
    ("end", Placeholder::End),
    ("previous_date", Placeholder::PreviousDate),
    ("previous_start", Placeholder::PreviousStart),
    ("previous_end", Placeholder::PreviousEnd),
    ("reference", Placeholder::Reference),
    ("eta_start", Placeholder::EtaStart),
    ("eta_end", Placeholder::EtaEnd),
    ("slots", Placeholder::Slots),
];

impl Placeholder {
    fn parse(name: &str) -> Option<Placeholder> {
        PLACEHOLDERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
    }

    fn available_in(self, kind: MessageKind) -> bool {
        match self {
            Placeholder::PreviousDate | Placeholder::PreviousStart | Placeholder::PreviousEnd => {
                kind == MessageKind::BookingRescheduled
            }
            Placeholder::EtaStart | Placeholder::EtaEnd => matches!(
                kind,
                MessageKind::TechnicianEnRoute | MessageKind::TechnicianRunningLate
            ),
            Placeholder::Slots => kind == MessageKind::MissedVisit,
            _ => true,
        }
    }
}

/// Why the templates cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    #[error("template {kind} ({language}): unknown placeholder `{{{name}}}`; known: {known}")]
    UnknownPlaceholder {
        kind: MessageKind,
        language: String,
        name: String,
        known: String,
    },
    #[error("template {kind} ({language}): `{{{name}}}` is not available in {kind} messages")]
    NotAvailable {
        kind: MessageKind,
        language: String,
        name: String,
    },
    #[error("template {kind} ({language}): unbalanced brace at byte {at}; write `{{{{` or `}}}}` for a literal brace")]
    Unbalanced {
        kind: MessageKind,
        language: String,
        at: usize,
    },
    #[error("template {kind} ({language}) is blank")]
    Blank { kind: MessageKind, language: String },
    #[error("template {kind} ({language}) is defined twice")]
    Duplicate { kind: MessageKind, language: String },
    #[error("template {kind}: `{language}` is not a supported language")]
    UnknownLanguage { kind: MessageKind, language: String },
    #[error("no {kind} template in the fallback language {language}")]
    MissingFallback { kind: MessageKind, language: String },
}

#[derive(Clone, Debug, PartialEq)]
enum Segment {
    Text(String),
    Field(Placeholder),
}

#[derive(Clone, Debug)]
struct Template {
    segments: Vec<Segment>,
}

/// Every template, checked. Made once by [`builtin`], or by [`Templates::load`].
#[derive(Debug)]
pub struct Templates {
    by_kind: HashMap<(MessageKind, &'static str), Template>,
}

/// The facts a message is rendered from.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    pub customer_name: &'a str,
    pub visit: JobKind,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    /// The window before a reschedule.
    pub previous: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub reference: &'a str,
    /// The ETA window (on the way, running late).
    pub eta: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Slots offered after a missed visit.
    pub offered: &'a [(DateTime<Utc>, DateTime<Utc>)],
}

/// A rendered message and the language it is in (which may be a fallback).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub language: &'static str,
}

fn parse(kind: MessageKind, language: &str, source: &str) -> Result<Template, TemplateError> {
    let unbalanced = |at| TemplateError::Unbalanced {
        kind,
        language: language.to_owned(),
        at,
    };
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut chars = source.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                chars.next();
                text.push('}');
            }
            '}' => return Err(unbalanced(at)),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some((_, '}')) => break,
                        Some((i, '{')) => return Err(unbalanced(i)),
                        Some((_, c)) => name.push(c),
                        None => return Err(unbalanced(at)),
                    }
                }
                let name = name.trim();
                let field =
                    Placeholder::parse(name).ok_or_else(|| TemplateError::UnknownPlaceholder {
                        kind,
                        language: language.to_owned(),
                        name: name.to_owned(),
                        known: PLACEHOLDERS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                if !field.available_in(kind) {
                    return Err(TemplateError::NotAvailable {
                        kind,
                        language: language.to_owned(),
                        name: name.to_owned(),
                    });
                }
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                segments.push(Segment::Field(field));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
    let blank = segments
        .iter()
        .all(|s| matches!(s, Segment::Text(t) if t.trim().is_empty()));
    if blank {
        return Err(TemplateError::Blank {
            kind,
            language: language.to_owned(),
        });
    }
    Ok(Template { segments })
}

impl Templates {
    /// Parses and checks `sources` (kind, language tag, text). Every kind must exist in
    /// [`super::DEFAULT_LANGUAGE`], the last fallback.
    pub fn load(sources: &[(MessageKind, &str, &str)]) -> Result<Templates, TemplateError> {
        let mut by_kind = HashMap::new();
        for &(kind, language, source) in sources {
            let Some(tag) = LANGUAGES.iter().find(|l| **l == language).copied() else {
                return Err(TemplateError::UnknownLanguage {
                    kind,
                    language: language.to_owned(),
                });
            };
            let template = parse(kind, tag, source)?;
            if by_kind.insert((kind, tag), template).is_some() {
                return Err(TemplateError::Duplicate {
                    kind,
                    language: tag.to_owned(),
                });
            }
        }
        let templates = Templates { by_kind };
        for kind in MessageKind::ALL {
            if !templates.has(kind, super::DEFAULT_LANGUAGE) {
                return Err(TemplateError::MissingFallback {
                    kind,
                    language: super::DEFAULT_LANGUAGE.to_owned(),
                });
            }
        }
        Ok(templates)
    }

    fn has(&self, kind: MessageKind, language: &str) -> bool {
        self.by_kind
            .keys()
            .any(|(k, l)| *k == kind && *l == language)
    }

    /// The languages that have a template of every kind (those an operation may make
    /// its default).
    pub fn complete_languages(&self) -> Vec<&'static str> {
        LANGUAGES
            .into_iter()
            .filter(|l| MessageKind::ALL.into_iter().all(|k| self.has(k, l)))
            .collect()
    }

    /// The language a `kind` message for a customer who wants `wanted` is written in:
    /// `wanted`, else another region of the same language, else `default`, else
    /// [`super::DEFAULT_LANGUAGE`] (always present).
    pub fn language_for(
        &self,
        kind: MessageKind,
        wanted: Option<&str>,
        default: &str,
    ) -> &'static str {
        let primary = |tag: &str| tag.split('-').next().unwrap_or(tag).to_owned();
        let mut candidates: Vec<&'static str> = Vec::new();
        if let Some(w) = wanted {
            candidates.extend(LANGUAGES.iter().filter(|l| **l == w));
            candidates.extend(
                LANGUAGES
                    .iter()
                    .filter(|l| **l != w && primary(l) == primary(w)),
            );
        }
        candidates.extend(LANGUAGES.iter().filter(|l| **l == default));
        candidates
            .into_iter()
            .find(|l| self.has(kind, l))
            .unwrap_or(super::DEFAULT_LANGUAGE)
    }

    /// The text of a `kind` message in the customer's language (or its fallback), times
    /// in `tz`.
    pub fn render(
        &self,
        kind: MessageKind,
        wanted: Option<&str>,
        default: &str,
        tz: Tz,
        facts: &Facts,
    ) -> Rendered {
        let language = self.language_for(kind, wanted, default);
        let template = self
            .by_kind
            .get(&(kind, language))
            .expect("language_for returns a language with this template");
        let local = |t: DateTime<Utc>| t.with_timezone(&tz);
        let (start, end) = (local(facts.window.0), local(facts.window.1));
        let (p_start, p_end) = facts
            .previous
            .map_or((start, end), |(s, e)| (local(s), local(e)));
        let mut text = String::new();
        for segment in &template.segments {
            match segment {
                Segment::Text(t) => text.push_str(t),
                Segment::Field(field) => text.push_str(&match field {
                    Placeholder::CustomerName => facts.customer_name.to_owned(),
                    Placeholder::Visit => visit_name(language, facts.visit).to_owned(),
                    Placeholder::Date => long_date(language, start.date_naive()),
                    Placeholder::Start => clock(language, start.time()),
                    Placeholder::End => clock(language, end.time()),
                    Placeholder::PreviousDate => long_date(language, p_start.date_naive()),
                    Placeholder::PreviousStart => clock(language, p_start.time()),
                    Placeholder::PreviousEnd => clock(language, p_end.time()),
                    Placeholder::Reference => facts.reference.to_owned(),
                    Placeholder::EtaStart => clock(
                        language,
                        local(facts.eta.map_or(facts.window.0, |e| e.0)).time(),
                    ),
                    Placeholder::EtaEnd => clock(
                        language,
                        local(facts.eta.map_or(facts.window.1, |e| e.1)).time(),
                    ),
                    Placeholder::Slots => slot_list(language, tz, facts.offered),
                }),
            }
        }
        Rendered { text, language }
    }
}

// ---------------------------------------------------------------------------------------
// Locale formats, by hand

#[derive(Clone, Copy)]
enum Locale {
    En,
    Es,
    Pt,
}

fn locale(language: &str) -> Locale {
    match language.split('-').next() {
        Some("es") => Locale::Es,
        Some("pt") => Locale::Pt,
        _ => Locale::En,
    }
}

fn weekday_name(locale: Locale, day: Weekday) -> &'static str {
    let i = day.num_days_from_monday() as usize;
    match locale {
        Locale::En => [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ][i],
        Locale::Es => [
            "lunes",
            "martes",
            "miércoles",
            "jueves",
            "viernes",
            "sábado",
            "domingo",
        ][i],
        Locale::Pt => [
            "segunda-feira",
            "terça-feira",
            "quarta-feira",
            "quinta-feira",
            "sexta-feira",
            "sábado",
            "domingo",
        ][i],
    }
}

fn month_name(locale: Locale, month0: u32) -> &'static str {
    let i = month0 as usize;
    match locale {
        Locale::En => [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ][i],
        Locale::Es => [
            "enero",
            "febrero",
            "marzo",
            "abril",
            "mayo",
            "junio",
            "julio",
            "agosto",
            "septiembre",
            "octubre",
            "noviembre",
            "diciembre",
        ][i],
        Locale::Pt => [
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
        ][i],
    }
}

/// "Monday, March 2, 2026" / "lunes, 2 de marzo de 2026" / "segunda-feira, 2 de março de 2026".
pub fn long_date(language: &str, date: NaiveDate) -> String {
    let l = locale(language);
    let (weekday, month) = (
        weekday_name(l, date.weekday()),
        month_name(l, date.month0()),
    );
    match l {
        Locale::En => format!("{weekday}, {month} {}, {}", date.day(), date.year()),
        Locale::Es | Locale::Pt => {
            format!("{weekday}, {} de {month} de {}", date.day(), date.year())
        }
    }
}

/// "8:00 AM" in English, "08:00" in Spanish and Portuguese.
pub fn clock(language: &str, time: NaiveTime) -> String {
    match locale(language) {
        Locale::En => {
            let (pm, hour) = time.hour12();
            let half = if pm { "PM" } else { "AM" };
            format!("{hour}:{:02} {half}", time.minute())
        }
        Locale::Es | Locale::Pt => format!("{:02}:{:02}", time.hour(), time.minute()),
    }
}

/// Offered slots as "Monday, March 2, 2026, 8:00 AM–10:00 AM; …" in `tz`; a sentence
/// saying there are none when the list is empty.
pub fn slot_list(language: &str, tz: Tz, slots: &[(DateTime<Utc>, DateTime<Utc>)]) -> String {
    if slots.is_empty() {
        return match locale(language) {
            Locale::En => "(no free slot right now: reply and we will find one)",
            Locale::Es => "(no hay horarios libres ahora: respóndenos y buscaremos uno)",
            Locale::Pt => "(sem horários livres agora: responda e buscaremos um)",
        }
        .to_owned();
    }
    slots
        .iter()
        .map(|(s, e)| {
            let (s, e) = (s.with_timezone(&tz), e.with_timezone(&tz));
            format!(
                "{}, {}–{}",
                long_date(language, s.date_naive()),
                clock(language, s.time()),
                clock(language, e.time())
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The kind of visit as a noun phrase in `language`.
pub fn visit_name(language: &str, kind: JobKind) -> &'static str {
    match (locale(language), kind) {
        (Locale::En, JobKind::Installation) => "installation visit",
        (Locale::En, JobKind::Repair) => "repair visit",
        (Locale::En, JobKind::EquipmentReturn) => "equipment pickup",
        (Locale::En, JobKind::Maintenance) => "maintenance visit",
        (Locale::En, JobKind::SiteSurvey) => "site survey",
        (Locale::Es, JobKind::Installation) => "visita de instalación",
        (Locale::Es, JobKind::Repair) => "visita de reparación",
        (Locale::Es, JobKind::EquipmentReturn) => "retiro de equipo",
        (Locale::Es, JobKind::Maintenance) => "visita de mantenimiento",
        (Locale::Es, JobKind::SiteSurvey) => "visita de evaluación",
        (Locale::Pt, JobKind::Installation) => "visita de instalação",
        (Locale::Pt, JobKind::Repair) => "visita de reparo",
        (Locale::Pt, JobKind::EquipmentReturn) => "retirada de equipamento",
        (Locale::Pt, JobKind::Maintenance) => "visita de manutenção",
        (Locale::Pt, JobKind::SiteSurvey) => "vistoria técnica",
    }
}

// ---------------------------------------------------------------------------------------
// The service's templates

use MessageKind::{
    BookingCancelled, BookingConfirmed, BookingReminder, BookingRescheduled,
    EquipmentReturnReminder, MissedVisit, SurveyRequest, TechnicianEnRoute, TechnicianRunningLate,
};

/// The templates the service ships: every kind in `en`, `es` and `pt-BR`.
pub const BUILTIN: [(MessageKind, &str, &str); 27] = [
    (BookingConfirmed, "en", "Hi {customer_name}, your {visit} is booked for {date}, between {start} and {end}. Reference: {reference}."),
    (BookingRescheduled, "en", "Hi {customer_name}, your {visit} has moved from {previous_date} ({previous_start}–{previous_end}) to {date}, between {start} and {end}."),
    (BookingCancelled, "en", "Hi {customer_name}, your {visit} on {date} between {start} and {end} is cancelled."),
    (BookingReminder, "en", "Reminder: your {visit} is on {date}, between {start} and {end}. The technician will arrive within this window."),
    (BookingConfirmed, "es", "Hola, {customer_name}. Reservamos tu {visit} para el {date}, entre las {start} y las {end}. Referencia: {reference}."),
    (BookingRescheduled, "es", "Hola, {customer_name}. Cambiamos tu {visit} del {previous_date} ({previous_start}–{previous_end}) al {date}, entre las {start} y las {end}."),
    (BookingCancelled, "es", "Hola, {customer_name}. Cancelamos tu {visit} del {date}, entre las {start} y las {end}."),
    (BookingReminder, "es", "Recordatorio: tu {visit} es el {date}, entre las {start} y las {end}. El técnico llegará dentro de ese horario."),
    (BookingConfirmed, "pt-BR", "Olá, {customer_name}! Sua {visit} está agendada para {date}, entre {start} e {end}. Protocolo: {reference}."),
    (BookingRescheduled, "pt-BR", "Olá, {customer_name}! Sua {visit} mudou de {previous_date} ({previous_start}–{previous_end}) para {date}, entre {start} e {end}."),
    (BookingCancelled, "pt-BR", "Olá, {customer_name}. Sua {visit} de {date}, entre {start} e {end}, foi cancelada."),
    (BookingReminder, "pt-BR", "Lembrete: sua {visit} é {date}, entre {start} e {end}. O técnico chegará dentro desse horário."),
    (TechnicianEnRoute, "en", "Hi {customer_name}, the technician is on the way for your {visit}: arriving between {eta_start} and {eta_end}. Reference: {reference}."),
    (TechnicianRunningLate, "en", "Hi {customer_name}, sorry: the technician is running late. New arrival time for your {visit}: between {eta_start} and {eta_end}."),
    (SurveyRequest, "en", "Hi {customer_name}, how was your {visit} on {date}? Reply with a score from 1 (bad) to 5 (great), and how likely you are to recommend us, from 0 to 10."),
    (MissedVisit, "en", "Hi {customer_name}, we missed you at your {visit} on {date}. Reply to choose a new time: {slots}. Reference: {reference}."),
    (EquipmentReturnReminder, "en", "Hi {customer_name}, your {visit} on {date} is cancelled, but the equipment (modem, router) still has to come back: keep it ready, or reply to book a return visit. Reference: {reference}."),
    (TechnicianEnRoute, "es", "Hola, {customer_name}. El técnico va en camino para tu {visit}: llegará entre las {eta_start} y las {eta_end}. Referencia: {reference}."),
    (TechnicianRunningLate, "es", "Hola, {customer_name}. Lo sentimos: el técnico viene con retraso. Nueva hora de llegada para tu {visit}: entre las {eta_start} y las {eta_end}."),
    (SurveyRequest, "es", "Hola, {customer_name}. ¿Qué tal tu {visit} del {date}? Responde con una nota del 1 (mala) al 5 (excelente) y cuánto nos recomendarías, del 0 al 10."),
    (MissedVisit, "es", "Hola, {customer_name}. No te encontramos en tu {visit} del {date}. Responde para elegir un nuevo horario: {slots}. Referencia: {reference}."),
    (EquipmentReturnReminder, "es", "Hola, {customer_name}. Tu {visit} del {date} fue cancelado, pero el equipo (módem, router) debe devolverse: tenlo listo o responde para reservar una visita de retiro. Referencia: {reference}."),
    (TechnicianEnRoute, "pt-BR", "Olá, {customer_name}! O técnico está a caminho da sua {visit}: chega entre {eta_start} e {eta_end}. Protocolo: {reference}."),
    (TechnicianRunningLate, "pt-BR", "Olá, {customer_name}. Desculpe: o técnico está atrasado. Novo horário de chegada para sua {visit}: entre {eta_start} e {eta_end}."),
    (SurveyRequest, "pt-BR", "Olá, {customer_name}! Como foi sua {visit} de {date}? Responda com uma nota de 1 (ruim) a 5 (ótima) e o quanto você nos recomendaria, de 0 a 10."),
    (MissedVisit, "pt-BR", "Olá, {customer_name}. Não encontramos você na sua {visit} de {date}. Responda para escolher um novo horário: {slots}. Protocolo: {reference}."),
    (EquipmentReturnReminder, "pt-BR", "Olá, {customer_name}. Sua {visit} de {date} foi cancelada, mas o equipamento (modem, roteador) precisa ser devolvido: deixe-o pronto ou responda para agendar a retirada. Protocolo: {reference}."),
];

static BUILTIN_TEMPLATES: LazyLock<Result<Templates, TemplateError>> =
    LazyLock::new(|| Templates::load(&BUILTIN));

/// The service's templates, parsed and checked once per process.
pub fn builtin() -> Result<&'static Templates, TemplateError> {
    BUILTIN_TEMPLATES.as_ref().map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn facts() -> Facts<'static> {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 11, 0, 0).unwrap();
        Facts {
            customer_name: "Maria",
            visit: JobKind::Repair,
            window: (start, start + chrono::TimeDelta::hours(2)),
            previous: Some((
                start - chrono::TimeDelta::days(1),
                start - chrono::TimeDelta::hours(22),
            )),
            reference: "bkt_1",
            eta: None,
            offered: &[],
        }
    }

    const SP: Tz = chrono_tz::America::Sao_Paulo;

    #[test]
    fn the_builtin_templates_load_with_three_complete_languages() {
        let t = builtin().unwrap();
        assert_eq!(t.complete_languages(), ["en", "es", "pt-BR"]);
    }

    #[test]
    fn renders_dates_and_times_the_way_each_language_writes_them() {
        let t = builtin().unwrap();
        let r = t.render(BookingConfirmed, Some("pt-BR"), "en", SP, &facts());
        assert_eq!(r.language, "pt-BR");
        assert_eq!(
            r.text,
            "Olá, Maria! Sua visita de reparo está agendada para segunda-feira, 2 de março \
             de 2026, entre 08:00 e 10:00. Protocolo: bkt_1."
        );
        let r = t.render(BookingReminder, Some("es"), "en", SP, &facts());
        assert!(
            r.text
                .contains("el lunes, 2 de marzo de 2026, entre las 08:00 y las 10:00"),
            "{}",
            r.text
        );
        let r = t.render(BookingRescheduled, Some("en"), "en", SP, &facts());
        assert_eq!(
            r.text,
            "Hi Maria, your repair visit has moved from Sunday, March 1, 2026 (8:00 AM–10:00 AM) \
             to Monday, March 2, 2026, between 8:00 AM and 10:00 AM."
        );
        assert_eq!(
            clock("en", NaiveTime::from_hms_opt(0, 5, 0).unwrap()),
            "12:05 AM"
        );
        assert_eq!(
            clock("en", NaiveTime::from_hms_opt(12, 0, 0).unwrap()),
            "12:00 PM"
        );
        // The customer's time zone, not the server's.
        let lisbon = t.render(
            BookingCancelled,
            Some("en"),
            "en",
            chrono_tz::Europe::Lisbon,
            &facts(),
        );
        assert!(
            lisbon.text.contains("between 11:00 AM and 1:00 PM"),
            "{}",
            lisbon.text
        );
    }

    #[test]
    fn visit_messages_say_the_eta_and_the_offered_slots_in_local_time() {
        let t = builtin().unwrap();
        let eta_start = Utc.with_ymd_and_hms(2026, 3, 2, 12, 30, 0).unwrap();
        let eta = (eta_start, eta_start + chrono::TimeDelta::hours(1));
        let slots = [(
            Utc.with_ymd_and_hms(2026, 3, 3, 13, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 3, 15, 0, 0).unwrap(),
        )];
        let f = Facts {
            eta: Some(eta),
            offered: &slots,
            ..facts()
        };
        let r = t.render(TechnicianEnRoute, Some("pt-BR"), "en", SP, &f);
        assert!(r.text.contains("chega entre 09:30 e 10:30"), "{}", r.text);
        let r = t.render(TechnicianRunningLate, Some("en"), "en", SP, &f);
        assert!(
            r.text.contains("between 9:30 AM and 10:30 AM"),
            "{}",
            r.text
        );
        let r = t.render(MissedVisit, Some("es"), "en", SP, &f);
        assert!(
            r.text.contains("martes, 3 de marzo de 2026, 10:00–12:00"),
            "{}",
            r.text
        );
        let none = Facts {
            offered: &[],
            ..facts()
        };
        let r = t.render(MissedVisit, Some("en"), "en", SP, &none);
        assert!(r.text.contains("no free slot right now"), "{}", r.text);
        // Every kind in every shipped language.
        for kind in MessageKind::ALL {
            for language in ["en", "es", "pt-BR"] {
                assert_eq!(t.language_for(kind, Some(language), "en"), language);
            }
        }
        // An ETA placeholder outside the ETA messages is refused at load.
        let mut sources = BUILTIN.to_vec();
        sources.push((SurveyRequest, "fr", "Arrivée {eta_start}"));
        assert!(matches!(
            Templates::load(&sources),
            Err(TemplateError::NotAvailable { .. })
        ));
    }

    #[test]
    fn a_missing_translation_falls_back_never_to_a_blank_message() {
        // Same language first (pt-PT → pt-BR), then the operation's default, then en.
        let t = builtin().unwrap();
        assert_eq!(
            t.language_for(BookingConfirmed, Some("pt-PT"), "en"),
            "pt-BR"
        );
        assert_eq!(t.language_for(BookingConfirmed, Some("fr"), "es"), "es");
        assert_eq!(t.language_for(BookingConfirmed, None, "pt-BR"), "pt-BR");
        assert_eq!(t.language_for(BookingConfirmed, Some("fr"), "fr"), "en");
        // A set where Spanish lacks the reminder.
        let partial: Vec<_> = BUILTIN
            .iter()
            .copied()
            .filter(|(k, l, _)| !(*k == BookingReminder && *l == "es"))
            .collect();
        let t = Templates::load(&partial).unwrap();
        let r = t.render(BookingReminder, Some("es"), "pt-BR", SP, &facts());
        assert_eq!(r.language, "pt-BR");
        assert!(r.text.starts_with("Lembrete"), "{}", r.text);
        assert_eq!(t.complete_languages(), ["en", "pt-BR"]);
    }

    #[test]
    fn a_broken_template_is_refused_at_load() {
        let with = |kind, text| {
            let mut sources = BUILTIN.to_vec();
            sources.push((kind, "fr", text));
            Templates::load(&sources)
        };
        assert!(matches!(
            with(BookingConfirmed, "Bonjour {client}"),
            Err(TemplateError::UnknownPlaceholder { name, .. }) if name == "client"
        ));
        assert!(matches!(
            with(BookingConfirmed, "Déplacé depuis {previous_date}"),
            Err(TemplateError::NotAvailable { .. })
        ));
        assert!(matches!(
            with(BookingConfirmed, "Bonjour {customer_name"),
            Err(TemplateError::Unbalanced { .. })
        ));
        assert!(matches!(
            with(BookingConfirmed, "Bonjour } {customer_name}"),
            Err(TemplateError::Unbalanced { .. })
        ));
        assert!(matches!(
            with(BookingConfirmed, "   "),
            Err(TemplateError::Blank { .. })
        ));
        assert!(with(BookingConfirmed, "{{literal}} braces {date}").is_ok());
        // English is the last fallback: it must be complete.
        let no_en: Vec<_> = BUILTIN
            .iter()
            .copied()
            .filter(|(_, l, _)| *l != "en")
            .collect();
        assert!(matches!(
            Templates::load(&no_en),
            Err(TemplateError::MissingFallback { .. })
        ));
        let err = with(BookingConfirmed, "Bonjour {client}").unwrap_err();
        assert!(
            err.to_string().contains("unknown placeholder `{client}`"),
            "{err}"
        );
    }
}
