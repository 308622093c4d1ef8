//! Customer messages: what is said ([`templates`]) and how it travels ([`webhook`],
//! [`email`]).
//!
//! The outbox ([`crate::server::messages::outbox`]) stores the facts of each message in the transaction
//! that causes it; the worker ([`crate::server::messages::worker`]) renders the text at delivery with
//! [`templates::Templates`] in the customer's language and time zone, and sends it on
//! a [`Channel`]. See docs/messages.md.

pub mod email;
pub mod ics;
pub mod targets;
pub mod templates;
pub mod webhook;

/// The languages a customer may choose (BCP-47 tags, canonical spelling). Those without
/// templates of their own (`pt-PT`, `fr`) fall back: to another region of the same
/// language when there is one, else to the operation's default language.
pub const LANGUAGES: [&str; 5] = ["en", "es", "pt-BR", "pt-PT", "fr"];

/// The default language of an operation that never set one.
pub const DEFAULT_LANGUAGE: &str = "en";

/// The canonical tag of `tag` when it is one of [`LANGUAGES`] (case and `_`/`-` ignored:
/// `pt_br` → `pt-BR`).
pub fn parse_language(tag: &str) -> Option<&'static str> {
    let wanted = tag.trim().replace('_', "-");
    LANGUAGES
        .iter()
        .find(|l| l.eq_ignore_ascii_case(&wanted))
        .copied()
}

/// How a message reaches the customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A signed webhook to the ISP's chat platform integration ([`webhook`]).
    Webhook,
    /// E-mail over SMTP ([`email`]): available where the worker has an SMTP relay
    /// configured, for customers with an e-mail address.
    Email,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Webhook, Channel::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Whether a worker can deliver on the channel: the webhook always (messages wait
    /// for an endpoint), e-mail when the worker has an SMTP relay.
    pub fn available(self, smtp_configured: bool) -> bool {
        match self {
            Channel::Webhook => true,
            Channel::Email => smtp_configured,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags_are_matched_loosely_and_returned_canonically() {
        assert_eq!(parse_language("pt-br"), Some("pt-BR"));
        assert_eq!(parse_language("PT_BR"), Some("pt-BR"));
        assert_eq!(parse_language(" es "), Some("es"));
        assert_eq!(parse_language("de"), None);
        assert_eq!(parse_language(""), None);
    }
}
