//! Cancel flags of the jobs running in this process, keyed by job id.
//!
//! DELETE /api/v1/jobs/{id} writes `cancelled` into the record (which every process sees) and, when
//! the job runs in this process, also sets its flag here, so the pipeline stops within one frame
//! rather than at the worker's next progress write. A worker in another process (Lambda) notices
//! at that write instead, by finding the record no longer its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Shared by the routes and the workers of one `AppState`; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct JobCancels {
    flags: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
}

/// A running job's entry; dropping it removes the entry.
#[derive(Debug)]
pub struct Registration {
    cancels: JobCancels,
    id: String,
    flag: Arc<AtomicBool>,
}

impl JobCancels {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        // A map of flags cannot be left half-changed by a panic; a poisoned lock is still usable.
        self.flags.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a run of job `id` with a fresh, unset flag.
    pub fn register(&self, id: &str) -> Registration {
        let flag = Arc::new(AtomicBool::new(false));
        self.lock().insert(id.to_string(), Arc::clone(&flag));
        Registration { cancels: self.clone(), id: id.to_string(), flag }
    }

    /// Sets the flags of job `id` and of its segments (registered as `<id>/...`) that run here;
    /// whether there was any.
    pub fn cancel(&self, id: &str) -> bool {
        let parts = format!("{id}/");
        let flags = self.lock();
        let mut found = false;
        for (key, flag) in flags.iter() {
            if key == id || key.starts_with(&parts) {
                flag.store(true, Ordering::Relaxed);
                found = true;
            }
        }
        found
    }

    /// Jobs running in this process.
    pub fn running(&self) -> usize {
        self.lock().len()
    }
}

impl Registration {
    pub fn flag(&self) -> &Arc<AtomicBool> {
        &self.flag
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut flags = self.cancels.lock();
        // Only our own entry: a later run of the same job may have registered since.
        if flags.get(&self.id).is_some_and(|flag| Arc::ptr_eq(flag, &self.flag)) {
            flags.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_sets_the_registered_flag_and_drop_unregisters() {
        let cancels = JobCancels::default();
        assert!(!cancels.cancel("a"), "nothing runs yet");
        let run = cancels.register("a");
        assert_eq!(cancels.running(), 1);
        assert!(cancels.cancel("a"));
        assert!(run.flag().load(Ordering::Relaxed));
        drop(run);
        assert_eq!(cancels.running(), 0);
        assert!(!cancels.cancel("a"));
    }

    #[test]
    fn cancelling_a_job_stops_its_segments_and_nothing_else() {
        let cancels = JobCancels::default();
        let (first, second, other) =
            (cancels.register("a/segments/0"), cancels.register("a/segments/1"), cancels.register("ab"));
        assert!(cancels.cancel("a"));
        assert!(first.flag().load(Ordering::Relaxed) && second.flag().load(Ordering::Relaxed));
        assert!(!other.flag().load(Ordering::Relaxed));
    }

    #[test]
    fn an_old_registration_does_not_remove_a_newer_one() {
        let cancels = JobCancels::default();
        let old = cancels.register("a");
        let new = cancels.register("a");
        drop(old);
        assert!(cancels.cancel("a"));
        assert!(new.flag().load(Ordering::Relaxed));
    }
}
