//! Admission control: a bounded number of uploads being received, a fixed number of processing
//! slots, and a bounded waiting line for them.
//!
//! Receiving a body and processing it are admitted separately, because a client controls how long
//! its upload takes. If the processing place were taken before the body is read (as it once was), a
//! handful of clients that send headers and a few bytes and then stall would hold every place, and
//! everyone else would get `429` for as long as the request timeout. So:
//!
//! 1. An **upload place** ([`ConcurrencyLimiter::try_start_upload`], `slots + queue` of them) is
//!    taken before the body is read, and given back as soon as the body is in. Every upload has
//!    FF_UPLOAD_TIMEOUT_SECS to arrive (else `408 upload_timeout`), so a stalled client holds an
//!    upload place for at most that long, and never a processing place.
//! 2. A **processing place** ([`ConcurrencyLimiter::try_admit`], also `slots + queue`) is taken
//!    once the body is in; admitted requests wait, in arrival order, for one of the `slots`
//!    ([`Admission::wait_for_slot`]).
//!
//! What bounds memory: bodies are buffered whole, and a body is held either by a request being
//! received (at most `slots + queue` of them) or by an admitted one (at most `slots + queue`), so at
//! most `2 × (slots + queue) × FF_MAX_UPLOAD_SIZE_MB` of uploads are in memory at once, whatever the
//! clients do. An upload is refused up front (before a byte of it is read) while the processing line
//! is full, so a client that would only wait in vain learns it before sending hundreds of
//! megabytes; the line can still fill while it uploads, and then it gets `429` after its upload.
//!
//! [`BusyLog`] counts the `429` answers and logs them at most once a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The shortest time between two log lines about busy answers.
const BUSY_LOG_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct ConcurrencyLimiter {
    /// `slots + queue` permits: how many request bodies may be received at once.
    uploads: Arc<Semaphore>,
    /// `slots + queue` permits: how many requests may be in the building at once.
    admission: Arc<Semaphore>,
    /// `slots` permits: how many requests may use the CPU at once.
    processing: Arc<Semaphore>,
}

/// Every slot is taken and the waiting line is full.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

/// The right to receive one request body; dropping it gives the place back.
#[derive(Debug)]
pub struct UploadPlace {
    _place: OwnedSemaphorePermit,
}

/// A request's place in the building; dropping it gives the place back.
#[derive(Debug)]
pub struct Admission {
    place: OwnedSemaphorePermit,
    processing: Arc<Semaphore>,
}

/// The right to run one job on the CPU; held until the job really ends, even if the client left.
#[derive(Debug)]
pub struct ProcessingSlot {
    _place: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

impl ConcurrencyLimiter {
    pub fn new(slots: usize, queue: usize) -> Self {
        Self {
            uploads: Arc::new(Semaphore::new(slots + queue)),
            admission: Arc::new(Semaphore::new(slots + queue)),
            processing: Arc::new(Semaphore::new(slots)),
        }
    }

    /// Takes an upload place without waiting, or says the service is busy: when every upload place
    /// is taken, or when the processing line is full already (the upload would be in vain).
    pub fn try_start_upload(&self) -> Result<UploadPlace, Busy> {
        if self.admission.available_permits() == 0 {
            return Err(Busy);
        }
        Arc::clone(&self.uploads).try_acquire_owned().map(|place| UploadPlace { _place: place }).map_err(|_| Busy)
    }

    /// Upload places free right now.
    pub fn free_upload_places(&self) -> usize {
        self.uploads.available_permits()
    }

    /// Takes a place without waiting, or says the service is busy.
    pub fn try_admit(&self) -> Result<Admission, Busy> {
        let place = Arc::clone(&self.admission).try_acquire_owned().map_err(|_| Busy)?;
        Ok(Admission { place, processing: Arc::clone(&self.processing) })
    }

    /// Processing slots free right now.
    pub fn idle_slots(&self) -> usize {
        self.processing.available_permits()
    }

    /// Places (slots plus waiting line) free right now; what is not free is running or waiting.
    pub fn free_places(&self) -> usize {
        self.admission.available_permits()
    }
}

impl Admission {
    /// Waits for a processing slot. Cancel-safe: dropping the future leaves the line.
    pub async fn wait_for_slot(self) -> ProcessingSlot {
        // The semaphore is never closed, so acquiring cannot fail; the match keeps that visible.
        match Arc::clone(&self.processing).acquire_owned().await {
            Ok(slot) => ProcessingSlot { _place: self.place, _slot: slot },
            Err(_) => unreachable!("the processing semaphore is never closed"),
        }
    }
}

/// How many requests were answered `429`, and a log line about them at most once a second.
///
/// Lock-free: the answer path under a flood is exactly where a contended lock would hurt.
#[derive(Debug)]
pub struct BusyLog {
    started: Instant,
    total: AtomicU64,
    /// The total when the last line was written.
    logged_total: AtomicU64,
    /// Milliseconds after `started` before which no new line is written.
    next_line_after_ms: AtomicU64,
}

impl Default for BusyLog {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl BusyLog {
    fn new(started: Instant) -> Self {
        Self {
            started,
            total: AtomicU64::new(0),
            logged_total: AtomicU64::new(0),
            next_line_after_ms: AtomicU64::new(0),
        }
    }

    /// Counts one busy answer and writes a line when none was written in the last second.
    pub fn record(&self) {
        if let Some(since_last_line) = self.record_at(Instant::now()) {
            tracing::warn!(
                code = "busy",
                rejected = since_last_line,
                rejected_total = self.total(),
                "requests answered 429: every processing slot and queue place is taken"
            );
        }
    }

    /// Busy answers since this process started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts one busy answer at `now`; `Some(count since the last line)` when a line is due.
    fn record_at(&self, now: Instant) -> Option<u64> {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let now_ms = u64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        let due = self.next_line_after_ms.load(Ordering::Relaxed);
        if now_ms < due {
            return None;
        }
        let next = now_ms.saturating_add(BUSY_LOG_INTERVAL.as_millis() as u64);
        // Of several answers that find a line due at once, only the one that moves the mark writes it.
        self.next_line_after_ms.compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed).ok()?;
        let previous = self.logged_total.swap(total, Ordering::Relaxed);
        Some(total.saturating_sub(previous))
    }
}

impl From<Busy> for ApiError {
    fn from(_: Busy) -> Self {
        Self::Busy
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn admits_slots_plus_queue_then_reports_busy() {
        let limiter = ConcurrencyLimiter::new(1, 1);
        let first = limiter.try_admit().unwrap();
        let _second = limiter.try_admit().unwrap();
        assert_eq!(limiter.try_admit().unwrap_err(), Busy);
        drop(first);
        assert!(limiter.try_admit().is_ok());
    }

    #[test]
    fn zero_queue_means_only_the_slots() {
        let limiter = ConcurrencyLimiter::new(2, 0);
        let _a = limiter.try_admit().unwrap();
        let _b = limiter.try_admit().unwrap();
        assert!(limiter.try_admit().is_err());
    }

    #[test]
    fn uploads_have_their_own_places_and_give_them_back_when_the_body_is_in() {
        let limiter = ConcurrencyLimiter::new(1, 1);
        let first = limiter.try_start_upload().unwrap();
        let _second = limiter.try_start_upload().unwrap();
        assert_eq!(limiter.try_start_upload().unwrap_err(), Busy);
        // Stalled uploads hold no processing place: admission is still open to bodies that are in.
        let admitted = limiter.try_admit().unwrap();
        drop(first);
        assert_eq!(limiter.free_upload_places(), 1);
        assert!(limiter.try_start_upload().is_ok());
        drop(admitted);
    }

    #[test]
    fn no_upload_starts_while_the_processing_line_is_full() {
        let limiter = ConcurrencyLimiter::new(1, 0);
        let admitted = limiter.try_admit().unwrap();
        assert_eq!(limiter.try_start_upload().unwrap_err(), Busy);
        assert_eq!(limiter.free_upload_places(), 1);
        drop(admitted);
        assert!(limiter.try_start_upload().is_ok());
    }

    #[test]
    fn busy_answers_are_all_counted_but_logged_once_a_second() {
        let start = Instant::now();
        let log = BusyLog::new(start);
        assert_eq!(log.record_at(start), Some(1), "the first one after a quiet time is logged at once");
        for millis in [1, 200, 999] {
            assert_eq!(log.record_at(start + Duration::from_millis(millis)), None);
        }
        assert_eq!(log.record_at(start + Duration::from_millis(1_000)), Some(4), "the line counts the silent ones");
        assert_eq!(log.record_at(start + Duration::from_millis(1_500)), None);
        assert_eq!(log.record_at(start + Duration::from_secs(60)), Some(2));
        assert_eq!(log.total(), 7);
    }

    #[tokio::test]
    async fn a_queued_request_gets_the_slot_when_it_frees() {
        let limiter = ConcurrencyLimiter::new(1, 1);
        let running = limiter.try_admit().unwrap().wait_for_slot().await;
        assert_eq!(limiter.idle_slots(), 0);
        let queued = limiter.try_admit().unwrap();
        let waiting = tokio::spawn(queued.wait_for_slot());
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(running);
        let slot = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        drop(slot);
        assert_eq!(limiter.idle_slots(), 1);
    }

    #[tokio::test]
    async fn leaving_the_line_gives_the_place_back() {
        let limiter = ConcurrencyLimiter::new(1, 1);
        let _running = limiter.try_admit().unwrap().wait_for_slot().await;
        let queued = limiter.try_admit().unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(10), queued.wait_for_slot()).await;
        assert!(gave_up.is_err());
        assert!(limiter.try_admit().is_ok());
    }
}
