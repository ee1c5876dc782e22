//! Where the shared test assets and FaceFusion's goldens are. Imports nothing from the crate, so
//! unit tests of any module can read the goldens without depending on the test helpers' engine.

use std::path::{Path, PathBuf};

/// `FF_TEST_ASSETS`, default `../shared/assets` beside the repository.
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("FF_TEST_ASSETS") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/assets"),
    }
}

/// The FaceFusion goldens: `parity/` beside the assets folder.
pub fn parity_dir() -> PathBuf {
    assets_dir().join("../parity")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
