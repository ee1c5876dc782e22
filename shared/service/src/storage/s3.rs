//! The S3 backend: AWS S3, or any S3-compatible server (MinIO, s3s-fs) through a custom endpoint.
//!
//! Credentials and region come from the standard AWS chain (environment, profile, web identity,
//! container and instance metadata), as every AWS tool finds them; the region falls back to
//! us-east-1. The client is built on first use, so creating the backend needs no runtime and
//! contacts nothing.
//!
//! Conditional writes are sent as `If-None-Match: *` and `If-Match: <etag>` on PutObject (and on
//! CompleteMultipartUpload for large bodies). AWS S3 and MinIO evaluate the condition atomically
//! with the write. s3s-fs 0.14.1, the server the tests run, honours both headers on PutObject but
//! checks them before it streams the body and renames the file, so two requests arriving within
//! that window could both pass. Writers in one process are therefore also serialised per key
//! here (`key_locks`), which makes the in-process workers of `ff serve` safe on any server that
//! honours the headers at all; across processes (Lambda) the guarantee is the server's, which
//! holds on AWS S3 and MinIO.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::meta::region::RegionProviderChain;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream as SdkByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{
    timed, validate_key, validate_prefix, with_idle_timeout, ByteStream, ListPage, ListRequest, ObjectBody, ObjectMeta,
    PutContent, Result, Storage, StorageError, WriteCondition,
};

/// Bodies up to this size go up in one PutObject; larger ones as multipart uploads of parts this
/// size, so memory per upload stays at about one part whatever the file's size.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
const MAX_LIST_LIMIT: usize = 1000;
/// Presigned URLs may live at most 7 days (SigV4's limit).
const MAX_PRESIGN: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where the objects are and how to reach them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// Prepended to every key with a '/'; empty for none.
    pub prefix: String,
    /// A custom endpoint (MinIO, s3s-fs): `http://127.0.0.1:9000`. `None` for AWS.
    pub endpoint: Option<String>,
    /// Bucket in the path (`endpoint/bucket/key`) rather than the host name; MinIO needs it.
    pub force_path_style: bool,
    /// Overrides the region the AWS chain finds.
    pub region: Option<String>,
    /// (access key, secret key) instead of the AWS credential chain; for tests against a local server.
    pub static_credentials: Option<(String, String)>,
    pub call_timeout: Duration,
}

pub struct S3Storage {
    settings: S3Settings,
    prefix: String,
    client: tokio::sync::OnceCell<Client>,
    /// One async lock per key with a conditional write in flight (see the module notes).
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl S3Storage {
    /// GetObject, whole or one byte range (`bytes=a-b`), as a stream bounded by the call timeout.
    async fn get_object(&self, key: &str, range: Option<String>) -> Result<ObjectBody> {
        validate_key(key)?;
        let full = self.full_key(key);
        let output = timed("get", key, self.limit(), async {
            let client = self.client().await;
            client
                .get_object()
                .bucket(&self.settings.bucket)
                .key(&full)
                .set_range(range)
                .send()
                .await
                .map_err(|e| map_sdk("get", key, e))
        })
        .await?;
        let meta = ObjectMeta {
            key: key.to_string(),
            size: output.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or_default(),
            etag: output.e_tag().unwrap_or_default().to_string(),
            last_modified: output.last_modified().and_then(to_system_time),
        };
        let key_owned = key.to_string();
        let stream = futures_util::stream::unfold(Some(output.body), move |body| {
            let key = key_owned.clone();
            async move {
                let mut body = body?;
                match body.try_next().await {
                    Ok(Some(chunk)) => Some((Ok(chunk), Some(body))),
                    Ok(None) => None,
                    Err(error) => Some((Err(StorageError::backend("get", &key, error)), None)),
                }
            }
        });
        Ok(ObjectBody { meta, stream: with_idle_timeout(Box::pin(stream), "get", key, self.limit()) })
    }

    pub fn new(settings: S3Settings) -> Self {
        let prefix = settings.prefix.trim_matches('/').to_string();
        Self { settings, prefix, client: tokio::sync::OnceCell::new(), key_locks: Mutex::new(HashMap::new()) }
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let region = RegionProviderChain::first_try(self.settings.region.clone().map(Region::new))
                    .or_default_provider()
                    .or_else(Region::new("us-east-1"));
                let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
                if let Some((access_key, secret_key)) = &self.settings.static_credentials {
                    loader =
                        loader.credentials_provider(Credentials::new(access_key, secret_key, None, None, "ff-static"));
                }
                let shared = loader.load().await;
                // Checksums only where S3 requires them: the SDK's default adds CRC trailers to
                // every upload, which S3-compatible servers do not all accept, and multipart
                // uploads would then need the part checksums repeated at completion.
                let mut builder = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(self.settings.force_path_style)
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
                if let Some(endpoint) = &self.settings.endpoint {
                    builder = builder.endpoint_url(endpoint);
                }
                Client::from_conf(builder.build())
            })
            .await
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn strip_prefix<'a>(&self, full: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.prefix).and_then(|rest| rest.strip_prefix('/')).unwrap_or(full)
        }
    }

    fn limit(&self) -> Duration {
        self.settings.call_timeout
    }

    /// Serialises this process's conditional writers of one key; unconditional writes skip it.
    async fn lock_key(&self, key: &str, condition: &WriteCondition) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        if *condition == WriteCondition::None {
            return None;
        }
        let lock = {
            let mut locks = self.key_locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Forget locks nobody holds or waits for, so the map does not grow with every key ever written.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(key.to_string()).or_default())
        };
        Some(lock.lock_owned().await)
    }

    /// Creates the bucket unless it exists; for local servers and tests (a real deployment's
    /// bucket comes from its template).
    pub async fn create_bucket_if_missing(&self) -> Result<()> {
        let bucket = &self.settings.bucket;
        timed("create_bucket", bucket, self.limit(), async {
            let client = self.client().await;
            match client.head_bucket().bucket(bucket).send().await {
                Ok(_) => return Ok(()),
                Err(error) if status_of(&error) == Some(404) => {}
                Err(error) => return Err(map_sdk("create_bucket", bucket, error)),
            }
            match client.create_bucket().bucket(bucket).send().await {
                Ok(_) => Ok(()),
                // Someone created it meanwhile: fine if we can use it.
                Err(error) => match client.head_bucket().bucket(bucket).send().await {
                    Ok(_) => Ok(()),
                    Err(_) => Err(map_sdk("create_bucket", bucket, error)),
                },
            }
        })
        .await
    }

    async fn put_single(&self, key: &str, body: Bytes, condition: &WriteCondition) -> Result<ObjectMeta> {
        let size = body.len() as u64;
        let full = self.full_key(key);
        timed("put", key, self.limit(), async {
            let mut request = self
                .client()
                .await
                .put_object()
                .bucket(&self.settings.bucket)
                .key(&full)
                .body(SdkByteStream::from(body));
            request = match condition {
                WriteCondition::None => request,
                WriteCondition::IfAbsent => request.if_none_match("*"),
                WriteCondition::IfMatch(etag) => request.if_match(etag),
            };
            let output = request.send().await.map_err(|e| map_sdk("put", key, e))?;
            Ok(ObjectMeta {
                key: key.to_string(),
                size,
                etag: output.e_tag().unwrap_or_default().to_string(),
                last_modified: None,
            })
        })
        .await
    }

    /// Uploads `first` (one full part) and the rest of `body` as a multipart upload, aborting it
    /// on any failure so no invisible parts are left to pay for.
    async fn put_multipart(
        &self,
        key: &str,
        first: BytesMut,
        body: ByteStream,
        condition: &WriteCondition,
    ) -> Result<ObjectMeta> {
        let full = self.full_key(key);
        let bucket = &self.settings.bucket;
        let upload_id = timed("put", key, self.limit(), async {
            let created = self
                .client()
                .await
                .create_multipart_upload()
                .bucket(bucket)
                .key(&full)
                .send()
                .await
                .map_err(|e| map_sdk("put", key, e))?;
            created.upload_id().map(str::to_string).ok_or_else(|| StorageError::backend("put", key, "no upload id"))
        })
        .await?;
        let result = self.upload_parts(key, &full, &upload_id, first, body, condition).await;
        if result.is_err() {
            let abort = self.client().await.abort_multipart_upload().bucket(bucket).key(&full).upload_id(&upload_id);
            if let Err(error) =
                timed("abort", key, self.limit(), async { abort.send().await.map_err(|e| map_sdk("abort", key, e)) })
                    .await
            {
                tracing::warn!(%error, "could not abort a failed multipart upload; a bucket lifecycle rule will");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        mut buffer: BytesMut,
        mut body: ByteStream,
        condition: &WriteCondition,
    ) -> Result<ObjectMeta> {
        let bucket = &self.settings.bucket;
        let mut parts = Vec::new();
        let mut size = 0u64;
        let mut ended = false;
        while !ended || !buffer.is_empty() {
            while !ended && buffer.len() < PART_SIZE {
                match body.next().await {
                    Some(chunk) => buffer.extend_from_slice(&chunk?),
                    None => ended = true,
                }
            }
            let take = buffer.len().min(PART_SIZE);
            let part = buffer.split_to(take).freeze();
            if part.is_empty() {
                break;
            }
            size += part.len() as u64;
            let number =
                i32::try_from(parts.len() + 1).map_err(|_| StorageError::backend("put", key, "too many parts"))?;
            let uploaded = timed("put", key, self.limit(), async {
                self.client()
                    .await
                    .upload_part()
                    .bucket(bucket)
                    .key(full)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(SdkByteStream::from(part))
                    .send()
                    .await
                    .map_err(|e| map_sdk("put", key, e))
            })
            .await?;
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(uploaded.e_tag).build());
        }
        timed("put", key, self.limit(), async {
            let mut request = self
                .client()
                .await
                .complete_multipart_upload()
                .bucket(bucket)
                .key(full)
                .upload_id(upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
            request = match condition {
                WriteCondition::None => request,
                WriteCondition::IfAbsent => request.if_none_match("*"),
                WriteCondition::IfMatch(etag) => request.if_match(etag),
            };
            let output = request.send().await.map_err(|e| map_sdk("put", key, e))?;
            Ok(ObjectMeta {
                key: key.to_string(),
                size,
                etag: output.e_tag().unwrap_or_default().to_string(),
                last_modified: None,
            })
        })
        .await
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes, condition: WriteCondition) -> Result<ObjectMeta> {
        if bytes.len() > PART_SIZE {
            return self.put_stream(key, super::stream_of(bytes), condition).await;
        }
        validate_key(key)?;
        let _guard = self.lock_key(key, &condition).await;
        self.put_single(key, bytes, &condition).await
    }

    async fn put_stream(&self, key: &str, body: ByteStream, condition: WriteCondition) -> Result<ObjectMeta> {
        validate_key(key)?;
        let mut body = with_idle_timeout(body, "put", key, self.limit());
        // Read up to one part: a body that ends sooner goes up in a single request.
        let mut first = BytesMut::new();
        let mut ended = false;
        while first.len() < PART_SIZE {
            match body.next().await {
                Some(chunk) => first.extend_from_slice(&chunk?),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let _guard = self.lock_key(key, &condition).await;
        if ended {
            self.put_single(key, first.freeze(), &condition).await
        } else {
            self.put_multipart(key, first, body, &condition).await
        }
    }

    async fn get(&self, key: &str) -> Result<ObjectBody> {
        self.get_object(key, None).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBody> {
        if range.start >= range.end {
            return Err(StorageError::backend("get", key, format!("empty range {range:?}")));
        }
        // HTTP ranges name the last byte, not the end.
        self.get_object(key, Some(format!("bytes={}-{}", range.start, range.end - 1))).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let full = self.full_key(key);
        timed("head", key, self.limit(), async {
            let output = self
                .client()
                .await
                .head_object()
                .bucket(&self.settings.bucket)
                .key(&full)
                .send()
                .await
                .map_err(|e| map_sdk("head", key, e))?;
            Ok(ObjectMeta {
                key: key.to_string(),
                size: output.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or_default(),
                etag: output.e_tag().unwrap_or_default().to_string(),
                last_modified: output.last_modified().and_then(to_system_time),
            })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let full = self.full_key(key);
        timed("delete", key, self.limit(), async {
            let client = self.client().await;
            match client.delete_object().bucket(&self.settings.bucket).key(&full).send().await {
                Ok(_) => Ok(()),
                // S3 answers 204 for a missing key; some compatible servers say 404.
                Err(error) if status_of(&error) == Some(404) => Ok(()),
                Err(error) => Err(map_sdk("delete", key, error)),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str, request: ListRequest) -> Result<ListPage> {
        validate_prefix(prefix)?;
        let limit = match request.limit {
            0 => MAX_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        };
        let full_prefix = if self.prefix.is_empty() { prefix.to_string() } else { format!("{}/{prefix}", self.prefix) };
        let output = timed("list", prefix, self.limit(), async {
            let mut call = self
                .client()
                .await
                .list_objects_v2()
                .bucket(&self.settings.bucket)
                .prefix(&full_prefix)
                .max_keys(limit as i32);
            if let Some(after) = &request.start_after {
                call = call.start_after(self.full_key(after));
            }
            if request.shallow {
                call = call.delimiter("/");
            }
            call.send().await.map_err(|e| map_sdk("list", prefix, e))
        })
        .await?;
        let objects: Vec<ObjectMeta> = output
            .contents()
            .iter()
            .filter_map(|object| {
                let key = self.strip_prefix(object.key()?).to_string();
                Some(ObjectMeta {
                    key,
                    size: object.size().and_then(|n| u64::try_from(n).ok()).unwrap_or_default(),
                    etag: object.e_tag().unwrap_or_default().to_string(),
                    last_modified: object.last_modified().and_then(to_system_time),
                })
            })
            .collect();
        // With a delimiter a page may end on a folder rather than an object: resume after whichever
        // of the two sorts last.
        let next_start_after = if output.is_truncated().unwrap_or(false) {
            let last_object = objects.last().map(|o| o.key.clone());
            let last_folder = output
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .map(|p| self.strip_prefix(p).to_string())
                .max();
            last_object.into_iter().chain(last_folder).max()
        } else {
            None
        };
        Ok(ListPage { objects, next_start_after })
    }

    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<Option<String>> {
        validate_key(key)?;
        let config = presigning(key, expires_in)?;
        let full = self.full_key(key);
        timed("presign", key, self.limit(), async {
            let request = self.client().await.get_object().bucket(&self.settings.bucket).key(&full);
            let presigned = request.presigned(config).await.map_err(|e| map_sdk("presign", key, e))?;
            Ok(Some(presigned.uri().to_string()))
        })
        .await
    }

    async fn presign_put(&self, key: &str, expires_in: Duration, content: &PutContent) -> Result<Option<String>> {
        validate_key(key)?;
        let config = presigning(key, expires_in)?;
        let full = self.full_key(key);
        let length = i64::try_from(content.length).map_err(|e| StorageError::backend("presign", key, e))?;
        timed("presign", key, self.limit(), async {
            // Both become signed headers: S3 refuses a PUT of another size or type.
            let request = self
                .client()
                .await
                .put_object()
                .bucket(&self.settings.bucket)
                .key(&full)
                .content_type(&content.content_type)
                .content_length(length);
            let presigned = request.presigned(config).await.map_err(|e| map_sdk("presign", key, e))?;
            Ok(Some(presigned.uri().to_string()))
        })
        .await
    }
}

fn presigning(key: &str, expires_in: Duration) -> Result<PresigningConfig> {
    PresigningConfig::expires_in(expires_in.clamp(Duration::from_secs(1), MAX_PRESIGN))
        .map_err(|e| StorageError::backend("presign", key, e))
}

fn to_system_time(time: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*time).ok()
}

fn status_of<E, R: HasStatus>(error: &SdkError<E, R>) -> Option<u16> {
    error.raw_response().map(HasStatus::status_code)
}

/// The HTTP status of a raw SDK response (a trait so `status_of` does not name the SDK's
/// internal response type).
trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// 404 → NotFound; 412, and AWS's 409 for two conditional writes racing → PreconditionFailed;
/// everything else → Backend with the SDK's full error chain (for the log, not the client).
fn map_sdk<E>(
    operation: &'static str,
    key: &str,
    error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = status_of(&error);
    let code = error.code().map(str::to_string);
    match (status, code.as_deref()) {
        // A missing bucket is a deployment fault, not a missing object.
        (_, Some("NoSuchBucket")) => StorageError::backend(operation, key, DisplayErrorContext(&error)),
        (Some(404), _) | (_, Some("NoSuchKey" | "NotFound")) => StorageError::NotFound { key: key.to_string() },
        (Some(412), _) | (_, Some("PreconditionFailed" | "ConditionalRequestConflict")) => {
            StorageError::PreconditionFailed { key: key.to_string() }
        }
        _ => StorageError::backend(operation, key, DisplayErrorContext(&error)),
    }
}
