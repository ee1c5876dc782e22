//! The process's metrics, rendered in the OpenMetrics text format that Prometheus scrapes (the
//! route and the layer that records requests are `http::metrics`).
//!
//! Requests by route, method and status with a duration histogram per route, jobs ended by
//! status, the job queue's depth and the jobs running here, frames processed, and per model the
//! calls into ONNX Runtime, the time spent inside it and the model's load time. The per-model
//! figures are read from the engine at scrape time, so inference adds nothing to keep them.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ff_pipeline::runtime::ModelSession;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::jobs::{Job, JobStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

type DurationHistograms = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The process's metrics; one per `AppState`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: DurationHistograms,
    jobs_ended: Family<StatusLabels, Counter>,
    frames: Counter,
    queue_depth: Gauge,
    jobs_running: Gauge,
    inference_calls: Family<ModelLabels, Counter>,
    inference_seconds: Family<ModelLabels, Counter<f64, AtomicU64>>,
    model_load_seconds: Family<ModelLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ff");
        let requests = Family::<RequestLabels, Counter>::default();
        // 5 ms to about 20 minutes: an image answer to a long video through /process.
        let durations: DurationHistograms =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 3.0, 12)));
        let jobs_ended = Family::<StatusLabels, Counter>::default();
        let frames = Counter::default();
        let queue_depth = Gauge::default();
        let jobs_running = Gauge::default();
        let inference_calls = Family::<ModelLabels, Counter>::default();
        let inference_seconds = Family::<ModelLabels, Counter<f64, AtomicU64>>::default();
        let model_load_seconds = Family::<ModelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("http_requests", "HTTP requests answered, by route, method and status", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer, by route", durations.clone());
        registry.register("jobs_ended", "Jobs that ended here, by final status", jobs_ended.clone());
        registry.register("frames_processed", "Video frames processed (/process and jobs)", frames.clone());
        registry.register("job_queue_depth", "Jobs waiting for this process's workers", queue_depth.clone());
        registry.register("jobs_running", "Jobs running in this process", jobs_running.clone());
        registry.register("inference_calls", "Calls into ONNX Runtime, by model", inference_calls.clone());
        registry.register("inference_seconds", "Time spent inside ONNX Runtime, by model", inference_seconds.clone());
        registry.register("model_load_seconds", "Time to load each model loaded so far", model_load_seconds.clone());
        Self {
            registry,
            requests,
            durations,
            jobs_ended,
            frames,
            queue_depth,
            jobs_running,
            inference_calls,
            inference_seconds,
            model_load_seconds,
        }
    }

    /// Counts a job that reached its final status, with the frames it processed.
    pub fn job_ended(&self, job: &Job) {
        let status = job.status.as_str().to_string();
        self.jobs_ended.get_or_create(&StatusLabels { status }).inc();
        if job.status == JobStatus::Completed {
            self.frames.inc_by(job.frames_done.unwrap_or(0));
        }
    }

    /// Counts one answer: its route pattern, method, status, time and the frames it processed.
    pub fn record(&self, route: String, method: String, status: u16, seconds: f64, frames: u64) {
        self.durations.get_or_create(&RouteLabels { route: route.clone() }).observe(seconds);
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
        self.frames.inc_by(frames);
    }

    /// The text a scrape answers, with the figures read now: the queue's depth, the jobs running
    /// and the loaded models.
    pub fn render(
        &self,
        queue_depth: usize,
        jobs_running: usize,
        models: Vec<(String, Arc<ModelSession>)>,
    ) -> Result<String, ApiError> {
        self.queue_depth.set(queue_depth as i64);
        self.jobs_running.set(jobs_running as i64);
        for (name, session) in models {
            let labels = ModelLabels { model: name };
            let (calls, time) = session.run_stats();
            // Counters only go up: add what happened since the last scrape.
            let counted = self.inference_calls.get_or_create(&labels);
            counted.inc_by(calls.saturating_sub(counted.get()));
            let seconds = self.inference_seconds.get_or_create(&labels);
            seconds.inc_by((time.as_secs_f64() - seconds.get()).max(0.0));
            self.model_load_seconds.get_or_create(&labels).set(session.load_time().as_secs_f64());
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|error| ApiError::internal(format!("encoding metrics: {error}")))?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_under_their_route_pattern() {
        let metrics = Metrics::new();
        metrics.record("/api/v1/jobs/{id}".into(), "GET".into(), 404, 0.01, 0);
        metrics.record("/api/v1/process".into(), "POST".into(), 200, 2.5, 30);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        assert!(
            text.contains(r#"ff_http_requests_total{route="/api/v1/jobs/{id}",method="GET",status="404"} 1"#),
            "{text}"
        );
        assert!(text.contains("ff_frames_processed_total 30"), "{text}");
        assert!(text.contains(r#"ff_http_request_duration_seconds_count{route="/api/v1/process"} 1"#), "{text}");
    }
}
