//! `Idempotency-Key` on job creation: a client that retries a creation (a timeout, a dropped
//! connection) with the same key gets the job its first attempt created instead of a second one.
//!
//! An entry `idempotency/<key name or ->/<SHA-256 of the Idempotency-Key>.json` remembers, for
//! [`RETENTION`], the job a key created and a fingerprint of the request that created it. The same
//! key with the same request replays that job; with another request it is refused (422), since
//! answering a different request with the old job would hide the client's bug. Entries are per API
//! key, so two clients choosing the same Idempotency-Key never meet.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::store::JobStore;
use super::{now_rfc3339, Job};
use crate::error::ApiError;
use crate::storage::{StorageError, WriteCondition};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);

pub const IDEMPOTENCY_PREFIX: &str = "idempotency/";

/// The longest Idempotency-Key taken (UUIDs and request hashes fit many times over).
const MAX_KEY_LENGTH: usize = 255;

/// A request's Idempotency-Key, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `None` without the header; 400 for an empty, over-long or non-printable one.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
        let text = value.to_str().unwrap_or_default().trim();
        let printable = text.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        if text.is_empty() || text.len() > MAX_KEY_LENGTH || !printable {
            return Err(ApiError::BadRequest(format!(
                "`Idempotency-Key` must be 1-{MAX_KEY_LENGTH} printable ASCII characters"
            )));
        }
        Ok(Some(Self(text.to_string())))
    }

    fn entry_key(&self, owner: Option<&str>) -> String {
        format!("{IDEMPOTENCY_PREFIX}{}/{}.json", owner.unwrap_or("-"), hex(&Sha256::digest(self.0.as_bytes())))
    }
}

/// A digest of everything that makes a creation request what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Each part is length-prefixed, so no two different lists of parts hash alike.
    pub fn of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Self(hex(&hasher.finalize()))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    fingerprint: String,
    job_id: String,
    created_at: String,
}

impl Entry {
    fn is_expired(&self) -> bool {
        OffsetDateTime::parse(&self.created_at, &Rfc3339)
            .map_or(true, |created| OffsetDateTime::now_utc() - created > RETENTION)
    }
}

/// Looks the key up: the job the same request created earlier (answer it again), `None` (create
/// the job), or 422 when the key came with another request.
pub async fn look_up(
    store: &JobStore,
    owner: Option<&str>,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
) -> Result<Option<Job>, ApiError> {
    let Some(entry) = read_entry(store, &key.entry_key(owner)).await? else { return Ok(None) };
    if entry.is_expired() {
        return Ok(None);
    }
    if entry.fingerprint != fingerprint.0 {
        return Err(ApiError::IdempotencyKeyReused);
    }
    // A job deleted since is not replayed: the key then creates a new one.
    Ok(store.load(&entry.job_id).await?.map(|(job, _)| job))
}

/// Remembers that `key` created `job_id`. When a concurrent request with the same key got there
/// first, the job it created (`Some`) is the answer, and the caller's own job is surplus.
pub async fn remember(
    store: &JobStore,
    owner: Option<&str>,
    key: &IdempotencyKey,
    fingerprint: &Fingerprint,
    job_id: &str,
) -> Result<Option<String>, ApiError> {
    let entry_key = key.entry_key(owner);
    let entry = Entry { fingerprint: fingerprint.0.clone(), job_id: job_id.to_string(), created_at: now_rfc3339() };
    let bytes = Bytes::from(serde_json::to_vec(&entry).map_err(|e| ApiError::internal(e.to_string()))?);
    match store.storage().put_bytes(&entry_key, bytes.clone(), WriteCondition::IfAbsent).await {
        Ok(_) => Ok(None),
        Err(StorageError::PreconditionFailed { .. }) => match read_entry(store, &entry_key).await? {
            Some(other) if !other.is_expired() => {
                if other.fingerprint == fingerprint.0 {
                    Ok(Some(other.job_id))
                } else {
                    Err(ApiError::IdempotencyKeyReused)
                }
            }
            // Expired or deleted meanwhile: this request's job takes the key.
            _ => {
                store.storage().put_bytes(&entry_key, bytes, WriteCondition::None).await?;
                Ok(None)
            }
        },
        Err(error) => Err(error.into()),
    }
}

async fn read_entry(store: &JobStore, key: &str) -> Result<Option<Entry>, ApiError> {
    match store.storage().get_bytes(key, 64 * 1024).await {
        Ok((bytes, _)) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_requests_apart_by_their_parts() {
        let ab = Fingerprint::of([b"ab".as_slice(), b"c".as_slice()]);
        assert_eq!(ab, Fingerprint::of([b"ab".as_slice(), b"c".as_slice()]));
        assert_ne!(ab, Fingerprint::of([b"a".as_slice(), b"bc".as_slice()]));
    }

    #[test]
    fn keys_are_checked_and_scoped_by_owner() {
        let mut headers = HeaderMap::new();
        assert_eq!(IdempotencyKey::from_headers(&headers).unwrap(), None);
        headers.insert(IDEMPOTENCY_KEY, "order-17".parse().unwrap());
        let key = IdempotencyKey::from_headers(&headers).unwrap().unwrap();
        assert_ne!(key.entry_key(Some("alice")), key.entry_key(Some("bob")));
        assert!(key.entry_key(None).starts_with("idempotency/-/"));
        headers.insert(IDEMPOTENCY_KEY, "x".repeat(256).parse().unwrap());
        assert!(IdempotencyKey::from_headers(&headers).is_err());
    }
}
