//! Wall time per stage of a run, for logs and the benchmarks.

use std::time::Duration;

/// Wall time per stage of one image job (or summed over a video's frames).
#[derive(Clone, Debug, Default)]
pub struct StageTimings {
    pub decode: Duration,
    /// The content analyser's three models.
    pub content: Duration,
    /// Audio decoding and the lip syncer's voice extraction and mel windows.
    pub audio: Duration,
    /// Face analysis of sources and target (detect, landmark, embed, classify).
    pub analyse: Duration,
    pub process: Duration,
    /// Per processor name, the part of `process` it took.
    pub processors: Vec<(String, Duration)>,
    pub encode: Duration,
}

impl StageTimings {
    /// Adds another run's times (a video's frames, from several workers).
    pub fn merge(&mut self, other: &StageTimings) {
        self.decode += other.decode;
        self.content += other.content;
        self.audio += other.audio;
        self.analyse += other.analyse;
        self.encode += other.encode;
        for (name, elapsed) in &other.processors {
            self.add_processor(name, *elapsed);
        }
    }

    pub fn add_processor(&mut self, name: &str, elapsed: Duration) {
        self.process += elapsed;
        match self.processors.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total += elapsed,
            None => self.processors.push((name.to_string(), elapsed)),
        }
    }
}
