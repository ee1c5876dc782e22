//! Loaded models, by FaceFusion model name: each loaded once on first use and shared afterwards.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::runtime::ModelSession;

/// Finds (and if allowed, downloads and verifies) the file of a model by its catalogue name.
pub type ModelResolver = Arc<dyn Fn(&str) -> Result<PathBuf> + Send + Sync>;

type Slot = Arc<Mutex<Option<Arc<ModelSession>>>>;

pub struct ModelRegistry {
    resolve: ModelResolver,
    intra_threads: usize,
    sessions_per_model: usize,
    slots: Mutex<HashMap<String, Slot>>,
}

impl ModelRegistry {
    pub fn new(resolve: ModelResolver, intra_threads: usize, sessions_per_model: usize) -> Self {
        Self { resolve, intra_threads, sessions_per_model, slots: Mutex::new(HashMap::new()) }
    }

    /// The shared session pool of `name`, loading it on first use. Loading one model holds only that
    /// model's slot, so requests for models already loaded never wait behind a load or a download.
    pub fn get(&self, name: &str) -> Result<Arc<ModelSession>> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(name.to_string()).or_default().clone()
        };
        let mut loaded = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(session) = loaded.as_ref() {
            return Ok(session.clone());
        }
        let path = (self.resolve)(name)?;
        let session = Arc::new(ModelSession::load(name, &path, self.intra_threads, self.sessions_per_model)?);
        *loaded = Some(session.clone());
        Ok(session)
    }

    /// The models loaded so far, by name. A model still loading is not one yet, and is skipped
    /// rather than waited for.
    pub fn loaded_sessions(&self) -> Vec<(String, Arc<ModelSession>)> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut sessions: Vec<(String, Arc<ModelSession>)> = slots
            .iter()
            .filter_map(|(name, slot)| {
                let loaded = slot.try_lock().ok()?.clone()?;
                Some((name.clone(), loaded))
            })
            .collect();
        sessions.sort_by(|a, b| a.0.cmp(&b.0));
        sessions
    }

    /// Names of the models loaded so far.
    pub fn loaded(&self) -> Vec<String> {
        self.loaded_sessions().into_iter().map(|(name, _)| name).collect()
    }
}
