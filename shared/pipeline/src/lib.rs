//! FaceFusion 3.5.3's processing pipeline, on CPU through ONNX Runtime.
//!
//! No transport, storage or Lambda types live here: callers hand in bytes or frames and options,
//! and get frames or bytes back.

pub mod affine;
pub mod allocator;
pub mod audio;
pub mod chain;
pub mod config_file;
pub mod content_analyser;
pub mod deep_swapper_models;
pub mod engine;
pub mod error;
pub mod face;
pub mod face_mapping;
pub mod face_survey;
pub mod frame_size;
pub mod geometry;
pub mod image_io;
pub mod imgproc;
pub mod mapping_option;
pub mod mask;
pub mod media;
pub mod models;
pub mod onnx_initializer;
pub mod options;
pub mod processor;
pub mod processors;
pub mod raster;
pub mod runtime;
pub mod sessions;
/// Where the test assets and goldens are; not in release builds.
#[cfg(any(test, feature = "testing"))]
pub mod test_assets;
/// Assets, goldens and measuring helpers for tests and benchmarks; not in release builds.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timings;
pub mod video;
pub mod video_faces;

pub use engine::{Engine, EngineConfig, ImageOutput, ImageRequest};
pub use error::{MediaFailure, PipelineError, Result};
pub use raster::{Frame, Mask, Raster};
