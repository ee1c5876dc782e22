//! ONNX Runtime loading and shared, concurrency-safe model sessions.
//!
//! `Session::run` needs `&mut Session`, so each model gets a small pool of sessions: concurrent
//! requests for the same model use different sessions, and different models never wait on each other.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ort::session::Session;

use crate::error::{PipelineError, Result};

pub const ORT_VERSION: &str = "1.31.1";
const ORT_LIBRARY: &str = "libonnxruntime.so.1.31.1";

static RUNTIME: OnceLock<std::result::Result<ort::environment::Environment, String>> = OnceLock::new();

/// Where `ff` looks for the ONNX Runtime library: `ORT_DYLIB_PATH`, then `.ort/lib` beside the
/// executable's workspace (what `scripts/setup` writes), then beside the executable itself.
pub fn default_library_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(path);
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            candidates.push(dir.join(".ort/lib").join(ORT_LIBRARY));
            candidates.push(dir.join("lib").join(ORT_LIBRARY));
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    candidates.push(workspace.join(".ort/lib").join(ORT_LIBRARY));
    let fallback = candidates.last().cloned().unwrap_or_else(|| PathBuf::from(ORT_LIBRARY));
    candidates.into_iter().find(|path| path.is_file()).unwrap_or(fallback)
}

/// Loads ONNX Runtime once per process. Later calls return the same environment.
pub fn environment() -> Result<ort::environment::Environment> {
    let loaded = RUNTIME.get_or_init(|| {
        let path = default_library_path();
        if !path.is_file() {
            return Err(format!("missing:{}", path.display()));
        }
        let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
        builder.with_name("ff").build().map_err(|e| e.to_string())
    });
    match loaded {
        Ok(env) => Ok(env.clone()),
        Err(message) => match message.strip_prefix("missing:") {
            Some(path) => Err(PipelineError::RuntimeMissing { path: PathBuf::from(path) }),
            None => Err(PipelineError::Runtime(message.clone())),
        },
    }
}

/// The shape and name of one model input or output, as the graph declares it.
#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    /// -1 for dynamic dimensions.
    pub shape: Vec<i64>,
}

/// A model loaded once and shared: a pool of up to `max_sessions` sessions over the same file.
pub struct ModelSession {
    name: String,
    path: PathBuf,
    intra_threads: usize,
    max_sessions: usize,
    pool: Mutex<PoolState>,
    returned: Condvar,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    stats: RunStats,
    /// How long its first session took to create (graph load and optimisation).
    load_time: Duration,
}

/// Time spent inside ONNX Runtime for one model, to tell inference from our own pre/post-processing.
#[derive(Default)]
struct RunStats {
    runs: AtomicU64,
    nanos: AtomicU64,
}

struct PoolState {
    idle: Vec<Session>,
    created: usize,
}

impl ModelSession {
    pub fn load(name: &str, path: &Path, intra_threads: usize, max_sessions: usize) -> Result<Self> {
        let started = Instant::now();
        let first = build_session(path, intra_threads, max_sessions > 1)?;
        let load_time = started.elapsed();
        let ports = |outlets: &[ort::value::Outlet]| {
            outlets
                .iter()
                .map(|outlet| Port {
                    name: outlet.name().to_string(),
                    shape: outlet.dtype().tensor_shape().map(|s| s.to_vec()).unwrap_or_default(),
                })
                .collect::<Vec<_>>()
        };
        let inputs = ports(first.inputs());
        let outputs = ports(first.outputs());
        Ok(Self {
            name: name.to_string(),
            path: path.to_path_buf(),
            intra_threads,
            max_sessions: max_sessions.max(1),
            pool: Mutex::new(PoolState { idle: vec![first], created: 1 }),
            returned: Condvar::new(),
            inputs,
            outputs,
            stats: RunStats::default(),
            load_time,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long the model's first session took to create.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// (calls, total time inside `Session::run`) since the model was loaded.
    pub fn run_stats(&self) -> (u64, Duration) {
        (self.stats.runs.load(Ordering::Relaxed), Duration::from_nanos(self.stats.nanos.load(Ordering::Relaxed)))
    }

    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|port| port.name == name)
    }

    /// Runs `work` with exclusive use of one session of the pool, creating one if all are busy
    /// and the pool is not full, otherwise waiting for one to come back.
    pub fn with_session<R>(&self, work: impl FnOnce(&mut Session) -> Result<R>) -> Result<R> {
        let mut session = self.checkout()?;
        let result = work(&mut session);
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).idle.push(session);
        self.returned.notify_one();
        result
    }

    fn checkout(&self) -> Result<Session> {
        let mut state = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(session);
            }
            if state.created < self.max_sessions {
                state.created += 1;
                drop(state);
                return build_session(&self.path, self.intra_threads, true).inspect_err(|_| {
                    self.pool.lock().unwrap_or_else(|p| p.into_inner()).created -= 1;
                });
            }
            state = self.returned.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// One session of `path`. `share_cores`: other sessions may run at the same time (a pool of several).
fn build_session(path: &Path, intra_threads: usize, share_cores: bool) -> Result<Session> {
    let env = environment()?;
    let builder = Session::builder(&env)?;
    let mut builder = builder.with_intra_threads(intra_threads).map_err(|e| PipelineError::Runtime(e.to_string()))?;
    // No CPU arena and no memory pattern: with them every session keeps the largest activations it
    // ever needed for as long as it lives, and a pool holds several sessions per model. Without them
    // a run's tensors are freed when it ends. Measured on the costed video swap (60 frames, 2
    // workers): peak RSS 354 → 218 MiB and no slower (the time is in the convolutions, not malloc).
    builder = builder
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
        .map_err(|e| PipelineError::Runtime(e.to_string()))?
        .with_memory_pattern(false)
        .map_err(|e| PipelineError::Runtime(e.to_string()))?;
    if share_cores {
        // Idle intra-op threads spin before they sleep; with several sessions running at once on the
        // same cores that spinning takes CPU from the threads doing the work.
        builder = builder.with_intra_op_spinning(false).map_err(|e| PipelineError::Runtime(e.to_string()))?;
    }
    builder.commit_from_file(path).map_err(|e| PipelineError::Runtime(format!("{}: {e}", path.display())))
}

/// A model input: a name and a dense tensor.
pub struct Input {
    pub name: &'static str,
    pub value: InputData,
}

pub enum InputData {
    F32 {
        shape: Vec<usize>,
        data: Vec<f32>,
    },
    /// CodeFormer's `weight` is the one double input FaceFusion feeds.
    F64 {
        shape: Vec<usize>,
        data: Vec<f64>,
    },
}

impl Input {
    pub fn f32(name: &'static str, shape: &[usize], data: Vec<f32>) -> Self {
        Self { name, value: InputData::F32 { shape: shape.to_vec(), data } }
    }

    pub fn f64(name: &'static str, shape: &[usize], data: Vec<f64>) -> Self {
        Self { name, value: InputData::F64 { shape: shape.to_vec(), data } }
    }
}

/// A model output copied out of the session: its shape and values (integers widened to f32,
/// which is exact for the class ids FaceFusion's models return).
#[derive(Clone, Debug)]
pub struct Output {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl ModelSession {
    /// Runs the model once and returns every output in graph order.
    pub fn run(&self, inputs: Vec<Input>) -> Result<Vec<Output>> {
        let values = inputs
            .into_iter()
            .map(|input| {
                let value: ort::value::DynValue = match input.value {
                    InputData::F32 { shape, data } => {
                        ort::value::Tensor::from_array((shape, data.into_boxed_slice()))?.into_dyn()
                    }
                    InputData::F64 { shape, data } => {
                        ort::value::Tensor::from_array((shape, data.into_boxed_slice()))?.into_dyn()
                    }
                };
                Ok((input.name, value))
            })
            .collect::<Result<Vec<_>>>()?;
        self.with_session(|session| {
            let started = Instant::now();
            let outputs = session.run(values)?;
            self.stats.runs.fetch_add(1, Ordering::Relaxed);
            self.stats.nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            outputs.values().map(copy_output).collect()
        })
        .map_err(|error| match error {
            PipelineError::Runtime(reason) => PipelineError::Runtime(format!("{}: {reason}", self.name)),
            other => other,
        })
    }
}

fn copy_output(value: ort::value::DynValueRef<'_>) -> Result<Output> {
    use ort::value::TensorElementType as T;
    let element = value.dtype().tensor_type();
    let (shape, data) = match element {
        Some(T::Float32) => {
            let (shape, data) = value.try_extract_tensor::<f32>()?;
            (shape.to_vec(), data.to_vec())
        }
        Some(T::Int64) => {
            let (shape, data) = value.try_extract_tensor::<i64>()?;
            (shape.to_vec(), data.iter().map(|&v| v as f32).collect())
        }
        Some(T::Float64) => {
            let (shape, data) = value.try_extract_tensor::<f64>()?;
            (shape.to_vec(), data.iter().map(|&v| v as f32).collect())
        }
        other => return Err(PipelineError::Runtime(format!("unsupported output type {other:?}"))),
    };
    Ok(Output { shape: shape.iter().map(|&d| d.max(0) as usize).collect(), data })
}
