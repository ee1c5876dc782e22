//! The bounded line of jobs waiting for this process's workers (FF_JOB_QUEUE_LENGTH).

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::limiter::Busy;

/// What an in-process worker runs: a job (from its claim to its result, or to its cut into
/// segments), or one segment of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    Job(String),
    Segment { job: String, index: u32 },
}

/// Jobs waiting for an in-process worker: a bounded line of work.
#[derive(Clone, Debug)]
pub struct JobQueue {
    sender: mpsc::Sender<Work>,
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<Work>>>,
    in_process: bool,
}

/// A reserved place in the queue, taken before a job's upload is read so that a client who
/// would get 429 learns it before sending the files.
#[derive(Debug)]
pub struct QueuePlace(mpsc::OwnedPermit<Work>);

impl QueuePlace {
    pub fn enqueue(self, job_id: String) {
        self.0.send(Work::Job(job_id));
    }
}

impl JobQueue {
    /// `capacity` waiting jobs; `in_process` false when no worker of this process takes jobs
    /// (FF_WORKERS=0: jobs run on storage events elsewhere), and then nothing is queued here.
    pub fn new(capacity: usize, in_process: bool) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Self { sender, receiver: Arc::new(tokio::sync::Mutex::new(receiver)), in_process }
    }

    /// A place for a job about to be created; `Ok(None)` when jobs are not run in this process.
    pub fn reserve(&self) -> Result<Option<QueuePlace>, Busy> {
        if !self.in_process {
            return Ok(None);
        }
        self.sender.clone().try_reserve_owned().map(|permit| Some(QueuePlace(permit))).map_err(|_| Busy)
    }

    /// Jobs waiting now.
    pub fn depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Queues if there is room; `false` when full (the scan tries again later: the job stays in
    /// storage).
    pub(crate) fn try_push(&self, work: Work) -> bool {
        self.in_process && self.sender.try_send(work).is_ok()
    }

    pub(crate) async fn next(&self) -> Option<Work> {
        self.receiver.lock().await.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_and_frees_a_place_when_one_is_taken() {
        let queue = JobQueue::new(1, true);
        let place = queue.reserve().unwrap().unwrap();
        assert!(queue.reserve().is_err());
        place.enqueue("a".into());
        assert_eq!(queue.depth(), 1);
        assert_eq!(queue.next().await, Some(Work::Job("a".into())));
        assert!(queue.reserve().is_ok());
    }

    #[test]
    fn without_in_process_workers_nothing_is_queued() {
        let queue = JobQueue::new(1, false);
        assert!(queue.reserve().unwrap().is_none());
        assert!(queue.reserve().unwrap().is_none());
    }
}
