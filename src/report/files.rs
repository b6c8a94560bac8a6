//! Writing the report files: each file and each run folder appears whole or not at all (staged
//! beside its place under a `.tmp` name, renamed into place), so a reader or a killed run never
//! sees half of one, and only names proven to lie inside the output folder are written or deleted.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;

use anyhow::Context;
use tempfile::{Builder, NamedTempFile, TempDir};

/// Files and folders prepared beside their final places, not yet visible under their names. What a
/// run staged but did not publish (an error, a signal) is removed when the `Staged` is dropped; what a
/// killed process left behind is removed by `remove_leftovers`.
pub struct Staged {
    files: Vec<(NamedTempFile, PathBuf)>,
    folders: Vec<(TempDir, PathBuf)>,
}

/// How staged names start (tempfile's own prefix), so that `remove_leftovers` can find them.
const STAGING: &str = ".tmp";

impl Staged {
    pub fn new() -> Staged {
        Staged {
            files: Vec::new(),
            folders: Vec::new(),
        }
    }

    /// Writes `contents` next to `path`; it becomes visible on `publish`.
    pub fn add(&mut self, path: &Path, contents: &str) -> anyhow::Result<()> {
        let folder = parent(path)?;
        let file = staging()
            .tempfile_in(folder)
            .with_context(|| format!("cannot create a file in {}", folder.display()))?;
        write_whole(file.as_file(), contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.files.push((file, path.to_path_buf()));
        Ok(())
    }

    /// Writes the folder `path` holding `files` (name, contents); it becomes visible, whole, on
    /// `publish`, replacing a folder of that name.
    pub fn add_folder(&mut self, path: &Path, files: &[(&str, &str)]) -> anyhow::Result<()> {
        let parent = parent(path)?;
        let folder = staging()
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a folder in {}", parent.display()))?;
        for (name, contents) in files {
            let file = inside(folder.path(), name)?;
            std::fs::File::create(&file)
                .and_then(|f| write_whole(&f, contents))
                .with_context(|| format!("cannot write {}", path.join(name).display()))?;
        }
        // Readable like any folder the process would create (temporary folders start private).
        std::fs::set_permissions(folder.path(), Permissions::from_mode(0o755))
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.folders.push((folder, path.to_path_buf()));
        Ok(())
    }

    /// Renames every staged folder, then every staged file, into place.
    pub fn publish(self) -> anyhow::Result<()> {
        for (folder, path) in self.folders {
            let staged = folder.keep();
            replace_folder(&staged, &path).map_err(|e| {
                let _ = std::fs::remove_dir_all(&staged);
                anyhow::anyhow!("cannot write {}: {e}", path.display())
            })?;
        }
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

/// The folder `path` is written in, created if missing.
fn parent(path: &Path) -> anyhow::Result<&Path> {
    let folder = parent_of(path);
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    Ok(folder)
}

/// Names staged files and folders so that `remove_leftovers` can find them.
fn staging() -> Builder<'static, 'static> {
    let mut builder = Builder::new();
    builder.prefix(STAGING);
    builder
}

/// Renames the folder `staged` to `path`. A folder already there (a run written again after its
/// state was deleted) is first renamed aside under a staged name, so that `path` always holds one
/// whole folder, then removed; if the last rename fails, it is put back.
fn replace_folder(staged: &Path, path: &Path) -> std::io::Result<()> {
    if !path.exists() {
        return std::fs::rename(staged, path);
    }
    let aside = staging().tempdir_in(parent_of(path))?.keep();
    std::fs::rename(path, &aside)?;
    if let Err(e) = std::fs::rename(staged, path) {
        let _ = std::fs::rename(&aside, path);
        return Err(e);
    }
    std::fs::remove_dir_all(&aside)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Writes a new file's whole contents to disk, readable like any file the process would create
/// (temporary files start private).
fn write_whole(mut file: &std::fs::File, contents: &str) -> std::io::Result<()> {
    file.set_permissions(Permissions::from_mode(0o644))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Removes what a killed run staged and never published in `folder`: the `.tmp` entries. Only the
/// holder of the state store's lock may call it (another run's staged files are then all dead).
pub fn remove_leftovers(folder: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Ok(());
    };
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_name().to_string_lossy().starts_with(STAGING) {
            continue;
        }
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// `root/name` when `name` is one plain folder or file name: not empty, not `.` or `..`, no
/// separator, no NUL. Every path levered writes or deletes under `output_dir` is built this way, so
/// it lies inside `output_dir` whatever the name says (README, "Security and operations").
pub fn inside(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut parts = Path::new(name).components();
    let plain = matches!(parts.next(), Some(Component::Normal(_)))
        && parts.next().is_none()
        && !name.contains(['/', '\\', '\0']);
    if !plain {
        anyhow::bail!(
            "`{}` is not a plain name: levered writes only inside {}",
            name.escape_debug(),
            root.display()
        );
    }
    Ok(root.join(name))
}

/// A run's id, which names its folder under `runs/`: its `as_of` and its sequence number among the
/// optimization's runs, `YYYYMMDDTHHMMSSZ-NNNN`.
pub fn run_id(as_of: DateTime<Utc>, seq: i64) -> String {
    format!("{}-{seq:04}", as_of.format("%Y%m%dT%H%M%SZ"))
}

/// Whether a folder name is one `run_id` makes (so that pruning never touches anything else).
pub fn is_run_id(name: &str) -> bool {
    let Some((time, seq)) = name.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.is_ascii()
        && time.len() == 16
        && digits(&time[..8])
        && &time[8..9] == "T"
        && digits(&time[9..15])
        && &time[15..] == "Z"
        && seq.len() >= 4
        && digits(seq)
}

/// Removes the oldest run folders under `runs_dir` beyond `keep`; entries that are not run folders
/// levered created are left alone and not counted.
pub fn prune_runs(runs_dir: &Path, keep: usize) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Ok(());
    };
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.file_name().to_str().is_some_and(is_run_id))
        .map(|e| e.path())
        .collect();
    folders.sort();
    let excess = folders.len().saturating_sub(keep);
    for folder in &folders[..excess] {
        std::fs::remove_dir_all(folder)
            .with_context(|| format!("cannot remove {}", folder.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_stay_inside() {
        let root = Path::new("/out");
        assert_eq!(inside(root, "hero").unwrap(), Path::new("/out/hero"));
        for name in ["", ".", "..", "../victim", "a/b", "/etc", "a\0b", "a\\b"] {
            assert!(inside(root, name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn run_ids_are_recognised_and_nothing_else() {
        let at = "2026-01-08T01:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(run_id(at, 3), "20260108T010000Z-0003");
        assert!(is_run_id(&run_id(at, 3)));
        assert!(is_run_id(&run_id(at, 12345)));
        for name in [
            "victim",
            "20260108T010000Z",
            "20260108T010000Z-03",
            "+100000101T235859Z-0003",
            "20260108X010000Z-0003",
        ] {
            assert!(!is_run_id(name), "{name}");
        }
    }

    #[test]
    fn a_published_folder_replaces_one_of_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs").join("20260101T000000Z-0001");
        let mut first = Staged::new();
        first
            .add_folder(&run, &[("report.csv", "old"), ("extra.txt", "old")])
            .unwrap();
        first.publish().unwrap();
        let mut second = Staged::new();
        second.add_folder(&run, &[("report.csv", "new")]).unwrap();
        second.publish().unwrap();
        assert_eq!(
            std::fs::read_to_string(run.join("report.csv")).unwrap(),
            "new"
        );
        assert!(!run.join("extra.txt").exists());
        let names: Vec<String> = std::fs::read_dir(dir.path().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["20260101T000000Z-0001"], "nothing staged is left");
    }

    #[test]
    fn pruning_keeps_what_levered_did_not_create() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "20260101T000000Z-0001",
            "20260101T010000Z-0002",
            "20260101T020000Z-0003",
            "keep-me",
            "0000",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        prune_runs(dir.path(), 1).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["0000", "20260101T020000Z-0003", "keep-me"]);
    }
}
