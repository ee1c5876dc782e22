//! Admission control: a fixed number of processing slots plus a bounded waiting line.
//!
//! A request is admitted before its body is read, so at most `slots + queue` uploads are buffered
//! in memory at once and a client that would only wait in vain is told `429` before it uploads
//! hundreds of megabytes. Admitted requests then wait, in arrival order, for a processing slot.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

#[derive(Clone, Debug)]
pub struct ConcurrencyLimiter {
    /// `slots + queue` permits: how many requests may be in the building at once.
    admission: Arc<Semaphore>,
    /// `slots` permits: how many requests may use the CPU at once.
    processing: Arc<Semaphore>,
}

/// Every slot is taken and the waiting line is full.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

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
        Self { admission: Arc::new(Semaphore::new(slots + queue)), processing: Arc::new(Semaphore::new(slots)) }
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
