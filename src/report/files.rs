//! Writing the report files: each file appears whole or not at all (a temporary file in the same
//! folder, renamed into place), so a reader or a killed run never sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tempfile::NamedTempFile;

/// Files prepared in their final folders, not yet visible under their names.
pub struct Staged {
    files: Vec<(NamedTempFile, PathBuf)>,
}

impl Staged {
    pub fn new() -> Staged {
        Staged { files: Vec::new() }
    }

    /// Writes `contents` next to `path`; it becomes visible on `publish`.
    pub fn add(&mut self, path: &Path, contents: &str) -> anyhow::Result<()> {
        let folder = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let mut file = NamedTempFile::new_in(folder)
            .with_context(|| format!("cannot create a file in {}", folder.display()))?;
        // Readable like any file the process would create (temporary files start private).
        file.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .and_then(|()| file.write_all(contents.as_bytes()))
            .and_then(|()| file.as_file().sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.files.push((file, path.to_path_buf()));
        Ok(())
    }

    /// Renames every staged file into place.
    pub fn publish(self) -> anyhow::Result<()> {
        for (file, path) in self.files {
            file.persist(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

impl Default for Staged {
    fn default() -> Self {
        Staged::new()
    }
}

/// Removes the oldest `runs/<run_id>/` folders beyond `keep`.
pub fn prune_runs(runs_dir: &Path, keep: usize) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Ok(());
    };
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let excess = folders.len().saturating_sub(keep);
    for folder in &folders[..excess] {
        std::fs::remove_dir_all(folder)
            .with_context(|| format!("cannot remove {}", folder.display()))?;
    }
    Ok(())
}
