//! Direct uploads: a client asks for a place for one input (`POST /api/v1/uploads`), puts the bytes
//! there itself, then names the key in a JSON job. On S3 the place is a presigned PUT straight into
//! the bucket, so inputs larger than a Lambda function URL's 6 MB never pass through a function; on
//! the filesystem backend it is ff's own `PUT /api/v1/uploads/{id}` behind an HMAC-signed,
//! expiring query. Either way the URL is bound to the declared content type and size.
//!
//! JSON jobs may name only keys under [`UPLOADS_PREFIX`], so a caller cannot point a job at other
//! jobs' files, results or models in the bucket.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ApiError;

/// Where uploaded inputs live.
pub const UPLOADS_PREFIX: &str = "uploads/";

/// How long an upload URL may be used: long enough for a large video on a slow line, short
/// enough that a leaked URL is soon useless.
pub const UPLOAD_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Media families an upload may declare; the job sniffs the bytes again, this only keeps the
/// bucket from becoming a general file store.
const ALLOWED_TYPE_FAMILIES: [&str; 3] = ["image/", "video/", "audio/"];
const GENERIC_TYPE: &str = "application/octet-stream";
/// A content type longer than this is not a media type.
const MAX_CONTENT_TYPE_LEN: usize = 127;

/// `POST /api/v1/uploads`: what the client is about to put.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The media type the PUT will send as `Content-Type` (`image/*`, `video/*`, `audio/*` or
    /// `application/octet-stream`).
    pub content_type: String,
    /// The exact size in bytes the PUT will send.
    #[schema(minimum = 1)]
    pub size: u64,
}

/// Where and how to put the bytes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadTicket {
    /// The key to name in a JSON job once the PUT succeeded.
    pub key: String,
    /// Where to PUT the bytes, as is (its query is the authorisation; no API key is sent).
    pub url: String,
    /// Always `PUT`.
    pub method: String,
    /// Headers the PUT must carry with exactly these values.
    pub headers: BTreeMap<String, String>,
    /// RFC 3339; the URL is refused after it.
    pub expires_at: String,
}

/// What ff's own upload route answers once the bytes are stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadReceipt {
    pub key: String,
    pub size: u64,
}

/// A checked upload request: one object of this type and size under a fresh key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadGrant {
    /// 32 lowercase hex digits (a random UUID): unguessable, so the key is the capability.
    pub id: String,
    pub content_type: String,
    pub size: u64,
    /// Unix seconds after which the URL is refused.
    pub expires: u64,
}

impl UploadRequest {
    /// Checks the declared type and size (at most `max_bytes`) and grants a fresh key until
    /// `now + UPLOAD_URL_LIFETIME`.
    pub fn grant(self, max_bytes: u64, now: SystemTime) -> Result<UploadGrant, ApiError> {
        let content_type = checked_content_type(&self.content_type)?;
        if self.size == 0 {
            return Err(ApiError::BadRequest("`size` must be the upload's size in bytes, at least 1".into()));
        }
        if self.size > max_bytes {
            return Err(ApiError::PayloadTooLarge { limit_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX) });
        }
        let expires = unix_seconds(now) + UPLOAD_URL_LIFETIME.as_secs();
        Ok(UploadGrant { id: uuid::Uuid::new_v4().simple().to_string(), content_type, size: self.size, expires })
    }
}

impl UploadGrant {
    pub fn key(&self) -> String {
        upload_key(&self.id)
    }

    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expires)
    }
}

/// The storage key of upload `id`.
pub fn upload_key(id: &str) -> String {
    format!("{UPLOADS_PREFIX}{id}")
}

/// Whether `id` is one [`UploadRequest::grant`] could have made.
pub fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Refuses a stored key a JSON job may not name: anything outside `uploads/`.
pub fn require_upload_key(key: &str) -> Result<(), ApiError> {
    match key.strip_prefix(UPLOADS_PREFIX) {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err(ApiError::BadRequest(format!(
            "`{key}` is not an upload: JSON jobs name objects under `{UPLOADS_PREFIX}` (POST /api/v1/uploads)"
        ))),
    }
}

fn checked_content_type(text: &str) -> Result<String, ApiError> {
    let content_type = text.trim().to_ascii_lowercase();
    let allowed = content_type == GENERIC_TYPE
        || ALLOWED_TYPE_FAMILIES.iter().any(|family| {
            content_type.strip_prefix(family).is_some_and(|subtype| {
                !subtype.is_empty() && subtype.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-._".contains(&b))
            })
        });
    if !allowed || content_type.len() > MAX_CONTENT_TYPE_LEN {
        return Err(ApiError::UnsupportedMedia(format!(
            "`content_type` must be an image/*, video/* or audio/* type or {GENERIC_TYPE}, not `{text}`"
        )));
    }
    Ok(content_type)
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// The query of an upload URL ff signs itself (filesystem backend).
#[derive(Debug, Serialize, Deserialize)]
pub struct SignedQuery {
    pub content_type: String,
    pub size: u64,
    pub expires: u64,
    pub signature: String,
}

/// Signs and checks ff's own upload URLs. The key is random per process: a URL lives
/// [`UPLOAD_URL_LIFETIME`] and dies with a restart, which only costs the client a new POST.
pub struct UploadSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for UploadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadSigner(hidden)")
    }
}

impl UploadSigner {
    /// A signer with a fresh key from the operating system's random source.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(Self { key })
    }

    /// The query that authorises PUTting exactly `grant`.
    pub fn query(&self, grant: &UploadGrant) -> SignedQuery {
        SignedQuery {
            content_type: grant.content_type.clone(),
            size: grant.size,
            expires: grant.expires,
            signature: URL_SAFE_NO_PAD.encode(self.mac(grant).finalize().into_bytes()),
        }
    }

    /// The grant a request's id and query carry, if ff signed it and it has not expired.
    pub fn verify(&self, id: &str, query: SignedQuery, now: SystemTime) -> Result<UploadGrant, ApiError> {
        let invalid = |why: &str| {
            ApiError::UploadUrlInvalid(format!("this upload URL {why}; ask POST /api/v1/uploads for a new one"))
        };
        let grant = UploadGrant {
            id: id.to_string(),
            content_type: query.content_type,
            size: query.size,
            expires: query.expires,
        };
        let signature =
            URL_SAFE_NO_PAD.decode(query.signature.as_bytes()).map_err(|_| invalid("is not one ff signed"))?;
        // `verify_slice` compares in constant time.
        self.mac(&grant).verify_slice(&signature).map_err(|_| invalid("is not one ff signed"))?;
        if unix_seconds(now) > grant.expires {
            return Err(invalid("has expired"));
        }
        Ok(grant)
    }

    /// The MAC over every field of the grant, each length-delimited by a newline (none of them
    /// may contain one: the id is hex, the type was checked, the numbers are digits).
    fn mac(&self, grant: &UploadGrant) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        let message = format!("PUT\n{}\n{}\n{}\n{}", grant.id, grant.content_type, grant.size, grant.expires);
        mac.update(message.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: &str, size: u64) -> UploadRequest {
        UploadRequest { content_type: content_type.into(), size }
    }

    #[test]
    fn grants_media_types_within_the_size_limit() {
        let now = SystemTime::now();
        let grant = request(" Image/JPEG ", 10).grant(100, now).unwrap();
        assert_eq!((grant.content_type.as_str(), grant.size), ("image/jpeg", 10));
        assert!(is_upload_id(&grant.id), "{}", grant.id);
        assert_eq!(grant.key(), format!("uploads/{}", grant.id));
        assert_eq!(grant.expires, unix_seconds(now) + 900);
        for allowed in ["video/mp4", "audio/x-wav", "application/octet-stream", "image/svg+xml"] {
            assert!(request(allowed, 1).grant(1, now).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn refuses_other_types_empty_and_oversized_uploads() {
        let now = SystemTime::now();
        for refused in ["text/html", "image/", "image", "application/json", "image/png\nx: y", "video/mp4; a=b"] {
            assert_eq!(request(refused, 1).grant(10, now).unwrap_err().code(), "unsupported_media", "{refused}");
        }
        assert_eq!(request("image/png", 0).grant(10, now).unwrap_err().code(), "bad_request");
        assert_eq!(request("image/png", 11).grant(10, now).unwrap_err().code(), "payload_too_large");
    }

    #[test]
    fn a_signed_query_verifies_until_it_expires() {
        let signer = UploadSigner::random().unwrap();
        let now = SystemTime::now();
        let grant = request("video/mp4", 1234).grant(10_000, now).unwrap();
        let verified = signer.verify(&grant.id, signer.query(&grant), now).unwrap();
        assert_eq!(verified, grant);
        let later = now + UPLOAD_URL_LIFETIME + Duration::from_secs(2);
        assert_eq!(signer.verify(&grant.id, signer.query(&grant), later).unwrap_err().code(), "upload_url_invalid");
    }

    #[test]
    fn any_changed_field_or_another_key_breaks_the_signature() {
        let signer = UploadSigner::random().unwrap();
        let now = SystemTime::now();
        let grant = request("image/png", 50).grant(100, now).unwrap();
        let tampered: [fn(&mut SignedQuery); 4] = [
            |q| q.size += 1,
            |q| q.expires += 3600,
            |q| q.content_type = "image/jpeg".into(),
            |q| q.signature = "AAAA".into(),
        ];
        for change in tampered {
            let mut query = signer.query(&grant);
            change(&mut query);
            assert!(signer.verify(&grant.id, query, now).is_err());
        }
        assert!(signer.verify("0".repeat(32).as_str(), signer.query(&grant), now).is_err());
        let other = UploadSigner::random().unwrap();
        assert!(other.verify(&grant.id, signer.query(&grant), now).is_err());
    }

    #[test]
    fn jobs_name_only_uploads() {
        assert!(require_upload_key("uploads/0123").is_ok());
        for refused in ["uploads/", "inbox/a.jpg", "jobs/x/result.png", "models/inswapper_128.onnx", "uploadsx/a"] {
            assert_eq!(require_upload_key(refused).unwrap_err().code(), "bad_request", "{refused}");
        }
    }
}
