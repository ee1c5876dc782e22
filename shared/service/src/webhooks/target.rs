//! A job's webhook as the client asked for it: where, and for which events.

use serde::{Deserialize, Serialize};

use super::guard::AllowedHosts;
use crate::error::ApiError;

/// The longest webhook URL taken.
const MAX_URL_LENGTH: usize = 2048;

/// When a webhook is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvent {
    /// A worker started the job.
    Start,
    /// The job's progress moved (at most once a second).
    Progress,
    /// The job ended: completed, failed or cancelled.
    Completed,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 3] = [Self::Start, Self::Progress, Self::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Progress => "progress",
            Self::Completed => "completed",
        }
    }
}

/// The webhook of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Webhook {
    pub url: String,
    /// Default `["completed"]`.
    pub events: Vec<WebhookEvent>,
}

/// One attempt at delivering an event, as the job record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    /// The `webhook-id` of the message; the same for every attempt of one event.
    pub id: String,
    pub event: WebhookEvent,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// RFC 3339 UTC.
    pub at: String,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
}

/// A webhook as a request names it, before it is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRequest {
    pub url: String,
    pub events: Option<Vec<String>>,
}

impl Webhook {
    /// Checks what can be checked before the job exists: an absolute https URL (or http to an
    /// allowed host), and known events. Where the host resolves is checked at each delivery.
    pub fn parse(url: &str, events: Option<&[String]>, allowed: &AllowedHosts) -> Result<Self, ApiError> {
        let bad = |reason: &str| ApiError::BadRequest(format!("`webhook`: {reason}"));
        if url.len() > MAX_URL_LENGTH {
            return Err(bad("the URL is too long"));
        }
        let uri: axum::http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let host = uri.host().filter(|host| !host.is_empty()).ok_or_else(|| bad("the URL has no host"))?;
        if uri.authority().is_some_and(|authority| authority.as_str().contains('@')) {
            return Err(bad("credentials in the URL are not allowed"));
        }
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let allowed_http = uri.scheme_str() == Some("http") && allowed.allows(host, port);
        if !(https || allowed_http) {
            return Err(bad("the URL must be https"));
        }
        let events = match events {
            None => vec![WebhookEvent::Completed],
            Some(names) => names.iter().map(|name| parse_event(name)).collect::<Result<Vec<_>, _>>()?,
        };
        if events.is_empty() {
            return Err(ApiError::BadRequest("`webhook_events_filter` names no event".into()));
        }
        Ok(Self { url: url.to_string(), events })
    }

    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.events.contains(&event)
    }
}

fn parse_event(name: &str) -> Result<WebhookEvent, ApiError> {
    WebhookEvent::ALL.into_iter().find(|event| event.as_str() == name.trim()).ok_or_else(|| {
        ApiError::BadRequest(format!("`webhook_events_filter`: `{name}` is not start, progress or completed"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_with_known_events_are_taken() {
        let none = AllowedHosts::default();
        let hook = Webhook::parse("https://example.com/hook", None, &none).unwrap();
        assert_eq!(hook.events, vec![WebhookEvent::Completed]);
        let events = vec!["start".to_string(), "progress".to_string()];
        let hook = Webhook::parse("https://example.com/hook", Some(&events), &none).unwrap();
        assert!(hook.wants(WebhookEvent::Start) && !hook.wants(WebhookEvent::Completed));
        for url in ["http://example.com/hook", "ftp://example.com", "/relative", "https://user:pw@example.com/"] {
            assert!(Webhook::parse(url, None, &none).is_err(), "{url}");
        }
        assert!(Webhook::parse("https://example.com", Some(&["done".to_string()]), &none).is_err());
        let local = AllowedHosts::parse("127.0.0.1:8080").unwrap();
        assert!(Webhook::parse("http://127.0.0.1:8080/hook", None, &local).is_ok());
    }
}
