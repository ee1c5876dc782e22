//! One run's files on disk: the target (an uploaded or downloaded video, or a photo the lip syncer
//! makes speak) and the encoded result, in a directory of their own under FF_TEMP_DIR that is
//! removed when the workspace is dropped, whether the run succeeded, failed or was cancelled.
//!
//! `ff process` works on the user's own files instead: [`Workspace::in_place`] names them and
//! removes nothing.

use std::path::{Path, PathBuf};

use ff_pipeline::media::{sniff_named, Container, MediaKind};
use tokio::io::AsyncReadExt;

use crate::error::ApiError;

/// Bytes read from a target file to tell what it is.
const SNIFF_BYTES: usize = 4096;
/// Run directories are named `ff-video-` and this many random letters and digits, a pattern the
/// start-up sweep (`sweep.rs`) matches exactly, so it never touches anything else in a shared
/// FF_TEMP_DIR.
const RUN_DIR_PREFIX: &str = "ff-video-";
const RUN_DIR_RANDOM_CHARS: usize = 6;

/// Whether `name` is the name of a run directory this module creates.
pub fn is_run_dir_name(name: &str) -> bool {
    name.strip_prefix(RUN_DIR_PREFIX)
        .is_some_and(|random| random.len() == RUN_DIR_RANDOM_CHARS && random.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[derive(Debug)]
pub struct Workspace {
    /// `None` for files the caller owns (`in_place`).
    dir: Option<tempfile::TempDir>,
    target: PathBuf,
    output: PathBuf,
    /// What the result is encoded in.
    container: Container,
}

impl Workspace {
    /// A fresh directory under `temp_dir`, for a target of kind `target` (stored under its
    /// extension, which ffmpeg reads) and a result encoded in `container`.
    pub fn create(temp_dir: &Path, target: MediaKind, container: Container) -> Result<Self, ApiError> {
        let dir = tempfile::Builder::new()
            .prefix(RUN_DIR_PREFIX)
            .rand_bytes(RUN_DIR_RANDOM_CHARS)
            .tempdir_in(temp_dir)
            .map_err(|e| ApiError::internal(format!("cannot create a directory in {}: {e}", temp_dir.display())))?;
        let target = dir.path().join(format!("target.{}", target.extension()));
        let output = dir.path().join(format!("output.{}", container.extension()));
        Ok(Self { dir: Some(dir), target, output, container })
    }

    /// A fresh directory for a target about to be downloaded, whose kind is not known yet: see
    /// [`Workspace::rename`].
    pub fn for_download(temp_dir: &Path) -> Result<Self, ApiError> {
        let mut workspace = Self::create(temp_dir, MediaKind::Video(Container::Mp4), Container::Mp4)?;
        workspace.target.set_extension("download");
        Ok(workspace)
    }

    /// Files the caller owns: nothing is removed on drop.
    pub fn in_place(target: PathBuf, output: PathBuf, container: Container) -> Self {
        Self { dir: None, target, output, container }
    }

    pub fn container(&self) -> Container {
        self.container
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    pub fn output(&self) -> &Path {
        &self.output
    }

    /// A path for another file of the run, beside the target (removed with the workspace).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.target.with_file_name(name)
    }

    /// Renames the target already in the directory after its kind, now known, and sets the
    /// result's container (a target downloaded before it was sniffed).
    pub fn rename(&mut self, target: MediaKind, container: Container) -> Result<(), ApiError> {
        let Some(dir) = &self.dir else {
            return Err(ApiError::internal("a workspace over the caller's files is not renamed"));
        };
        let renamed = dir.path().join(format!("target.{}", target.extension()));
        std::fs::rename(&self.target, &renamed)
            .map_err(|e| ApiError::internal(format!("cannot rename {}: {e}", self.target.display())))?;
        self.target = renamed;
        self.output = dir.path().join(format!("output.{}", container.extension()));
        self.container = container;
        Ok(())
    }

    pub async fn write_target(&self, bytes: &[u8]) -> Result<(), ApiError> {
        tokio::fs::write(&self.target, bytes)
            .await
            .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", self.target.display())))
    }

    pub async fn read_target(&self) -> Result<Vec<u8>, ApiError> {
        tokio::fs::read(&self.target)
            .await
            .map_err(|e| ApiError::internal(format!("reading {} failed: {e}", self.target.display())))
    }

    /// What the target is, from its first bytes and, for a video's container, `name`.
    pub async fn target_kind(&self, name: Option<&str>) -> Result<Option<MediaKind>, ApiError> {
        Ok(sniff_named(&self.target_head().await?, name))
    }

    /// The target's first bytes, enough to tell its kind and container.
    async fn target_head(&self) -> Result<Vec<u8>, ApiError> {
        let mut file = tokio::fs::File::open(&self.target)
            .await
            .map_err(|e| ApiError::internal(format!("opening {} failed: {e}", self.target.display())))?;
        let mut head = vec![0u8; SNIFF_BYTES];
        let mut filled = 0;
        while filled < head.len() {
            match file.read(&mut head[filled..]).await {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(e) => return Err(ApiError::internal(format!("reading {} failed: {e}", self.target.display()))),
            }
        }
        head.truncate(filled);
        Ok(head)
    }

    /// The encoded result, read whole (a `/process` answer, bounded by FF_MAX_SYNC_VIDEO_SECS).
    pub fn read_output(&self) -> Result<Vec<u8>, ApiError> {
        std::fs::read(&self.output).map_err(|e| ApiError::internal(format!("reading the encoded video failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_removed_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let workspace = Workspace::create(root.path(), MediaKind::Video(Container::Mp4), Container::Mkv).unwrap();
        assert!(workspace.target().ends_with("target.mp4") && workspace.output().ends_with("output.mkv"));
        std::fs::write(workspace.target(), b"x").unwrap();
        drop(workspace);
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn run_directories_match_their_own_name_pattern_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let workspace = Workspace::for_download(root.path()).unwrap();
        let name = workspace.target().parent().unwrap().file_name().unwrap().to_str().unwrap().to_string();
        assert!(is_run_dir_name(&name), "{name}");
        for other in ["ff-video-", "ff-video-abc12", "ff-video-abc1234", "ff-video-abc-12", "ff-image-abc123", "x"] {
            assert!(!is_run_dir_name(other), "{other}");
        }
    }

    #[test]
    fn files_in_place_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("mine.mp4");
        std::fs::write(&target, b"x").unwrap();
        drop(Workspace::in_place(target.clone(), root.path().join("out.mp4"), Container::Mp4));
        assert!(target.exists());
    }
}
