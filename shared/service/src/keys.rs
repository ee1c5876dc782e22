//! API keys, who is calling, and per-key request limits; the layer that applies them is
//! `auth`.
//!
//! Keys are configured as `name:sha256-hex-of-key` entries (FF_API_KEYS, FF_API_KEYS_FILE), so the
//! server never holds a key itself, only its digest. Several entries may share a name: that is how a
//! key is rotated without the client's jobs changing hands (jobs belong to the name). A request
//! presents `Authorization: Bearer <key>`; its SHA-256 is compared with every digest in constant
//! time, so neither the comparison nor the position of the match leaks through timing.
//!
//! With no keys configured the API is open (local use) and every request is the anonymous caller.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// One configured key: the name its jobs are recorded under and the SHA-256 of the key.
#[derive(Clone, PartialEq, Eq)]
struct KeyEntry {
    name: Arc<str>,
    digest: [u8; 32],
}

/// The configured keys; empty means the API is open.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKeys {
    entries: Vec<KeyEntry>,
}

impl std::fmt::Debug for ApiKeys {
    /// Names only: digests of keys are not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|entry| &entry.name)).finish()
    }
}

impl ApiKeys {
    /// Entries separated by commas or newlines; blank lines and `#` comments are skipped. A bad
    /// entry is refused with (its name part, what was expected): the rest of an entry pasted wrongly
    /// might be the key itself, so it is never echoed.
    pub fn parse(text: &str) -> Result<Self, (String, String)> {
        let entries = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty() && !entry.starts_with('#'))
            .map(parse_entry)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { entries })
    }

    pub fn merge(mut self, other: Self) -> Self {
        self.entries.extend(other.entries);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the key presented, if it is one of ours. Every digest is compared, whatever
    /// matched first, so the time taken does not depend on which entry matched.
    pub(crate) fn identify(&self, presented: &str) -> Option<Arc<str>> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.entries
            .iter()
            .fold(None, |found, entry| if constant_time_eq(&entry.digest, &digest) { Some(&entry.name) } else { found })
            .cloned()
    }
}

fn parse_entry(entry: &str) -> Result<KeyEntry, (String, String)> {
    let invalid = |expected: &str| {
        let name: String = entry.split(':').next().unwrap_or_default().chars().take(64).collect();
        (name, expected.to_string())
    };
    let (name, hex) = entry.split_once(':').ok_or_else(|| invalid("`name:sha256-hex-of-key` entries"))?;
    // The name becomes part of storage keys (`owners/<name>/`): no separators, no `..`.
    let name_ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(invalid(
            "a key name of 1-64 letters, digits, `-`, `_` or `.` (a letter or digit first) before the `:`",
        ));
    }
    let digest = decode_digest(hex.trim()).ok_or_else(|| invalid("64 hexadecimal digits (a SHA-256) after the `:`"))?;
    Ok(KeyEntry { name: Arc::from(name), digest })
}

fn decode_digest(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(digest)
}

/// Compares without stopping at the first difference, so timing does not reveal the secret.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if it sent one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// Who is calling: the name of their key, or anonymous on an open API. Handlers take it from the
/// request's extensions, where the authentication layer (`auth`) put it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    key_name: Option<Arc<str>>,
}

impl Caller {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn named(name: impl Into<Arc<str>>) -> Self {
        Self { key_name: Some(name.into()) }
    }

    /// The key name jobs are recorded under; `None` on an open API.
    pub fn key_name(&self) -> Option<&str> {
        self.key_name.as_deref()
    }

    /// Whether this caller may see a job recorded under `owner`. On an open API everyone sees
    /// everything; with keys, a key sees only its own jobs.
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        match self.key_name() {
            None => true,
            Some(name) => owner == Some(name),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// Fails closed: a route reached without the authentication layer in front of it is a server bug, and
    /// must not be taken for an open API.
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a route was reached without the authentication layer"))
    }
}

/// Per-key token buckets of FF_RATE_LIMIT_PER_MINUTE; the anonymous caller has one bucket of its own.
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<Option<Arc<str>>>,
}

impl RateLimits {
    pub fn per_minute(requests: NonZeroU32) -> Self {
        Self { limiter: RateLimiter::keyed(Quota::per_minute(requests)) }
    }

    /// `Err(wait)` when the caller's bucket is empty: how long until a request would be let through.
    pub(crate) fn check(&self, caller: &Caller) -> Result<(), Duration> {
        self.limiter
            .check_key(&caller.key_name)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(key: &str) -> String {
        Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_key_is_known_by_its_digest_and_rotation_keeps_the_name() {
        let text =
            format!("alice:{}, alice:{}\n# retired\nbob:{}", sha256_hex("old"), sha256_hex("new"), sha256_hex("b"));
        let keys = ApiKeys::parse(&text).unwrap();
        assert_eq!(keys.identify("old").as_deref(), Some("alice"));
        assert_eq!(keys.identify("new").as_deref(), Some("alice"));
        assert_eq!(keys.identify("b").as_deref(), Some("bob"));
        assert_eq!(keys.identify("alice"), None);
        assert_eq!(keys.identify(""), None);
    }

    #[test]
    fn malformed_entries_are_refused_without_echoing_the_key() {
        let bad_hex = format!("alice:{}", "g".repeat(64));
        let dots = format!("..:{}", "0".repeat(64));
        for entry in ["alice", "alice:abc", ":", "a b:00", bad_hex.as_str(), dots.as_str()] {
            assert!(ApiKeys::parse(entry).is_err(), "{entry}");
        }
        let (shown, _) = ApiKeys::parse("alice:sk-live-secret-key-pasted-by-mistake").unwrap_err();
        assert_eq!(shown, "alice", "only the name part is echoed");
    }

    #[test]
    fn a_key_sees_only_its_own_jobs_and_an_open_api_sees_all() {
        assert!(Caller::anonymous().may_see(Some("alice")));
        assert!(Caller::anonymous().may_see(None));
        assert!(Caller::named("alice").may_see(Some("alice")));
        assert!(!Caller::named("alice").may_see(Some("bob")));
        assert!(!Caller::named("alice").may_see(None));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret-longer"));
    }

    #[test]
    fn the_bucket_empties_and_says_how_long_to_wait() {
        let limits = RateLimits::per_minute(NonZeroU32::new(2).unwrap());
        let alice = Caller::named("alice");
        assert!(limits.check(&alice).is_ok());
        assert!(limits.check(&alice).is_ok());
        let wait = limits.check(&alice).unwrap_err();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30), "{wait:?}");
        assert!(limits.check(&Caller::named("bob")).is_ok(), "buckets are per key");
    }
}
