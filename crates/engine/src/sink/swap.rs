//! Applying a [`PartitionSwap`]: a compaction's new file set replaces a partition folder's.
//!
//! On a local disk the staged folder is completed with hard links to every file of the
//! published folder that stays, then the two folders are exchanged by one `renameat2(2)` call
//! with `RENAME_EXCHANGE`: a reader listing the partition sees the old folder or the new one,
//! whole. Files published into the old folder while the swap was prepared (a run's publish)
//! are moved into the new one, then the old folder is deleted.
//!
//! Elsewhere (object stores, where a folder is a listing and nothing swaps several objects at
//! once; a local folder with subfolders; a file system without the exchange) the new files are
//! moved in one by one and then the replaced ones deleted, as a full refresh publishes.
//!
//! Both are idempotent, so a recovery applies a saved swap again: on a local disk the swap
//! happened iff the published folder holds the added files (their names are new).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use pipectl_state::{PartitionSwap, PublishEntry, RetiredObject};

use crate::connect::{Connections, StoreHandle};
use crate::error::{Error, Result};

/// One swap at a time in this process: a recovery started by a run of the daemon may apply
/// the intent a compaction in the same daemon is applying, and two exchanges of one folder
/// at once would undo each other.
static APPLYING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Applies `swap` (see the module documentation).
pub async fn apply(connections: &Connections, swap: &PartitionSwap) -> Result<()> {
    let handle = connections.object_store(&swap.connection)?;
    let _one_at_a_time = APPLYING.lock().await;
    if abandoned(&handle, swap).await? {
        // Its staging was deleted before any of it was published (a recovery took the
        // compaction for an interrupted one): the old files are all there, nothing to do.
        tracing::warn!(folder = %swap.folder, "a compaction's staged files are gone before it was applied; the partition keeps its files");
        return Ok(());
    }
    if let Some((folder, staged)) = local_folders(&handle, swap) {
        let task_swap = swap.clone();
        let outcome = tokio::task::spawn_blocking(move || exchange(&folder, &staged, &task_swap))
            .await
            .map_err(|e| Error::internal(format!("the partition swap task failed: {e}")))?;
        match outcome {
            Ok(Exchange::Done) => return Ok(()),
            Ok(Exchange::Unsupported) => {}
            Err(e) => {
                return Err(Error::external(
                    format!(
                        "cannot swap the compacted files into {}/{}",
                        handle.display, swap.folder
                    ),
                    e,
                ));
            }
        }
    }
    let folder = parse(&swap.folder);
    let staged = parse(&swap.staged);
    let publish: Vec<PublishEntry> = swap
        .added
        .iter()
        .map(|name| PublishEntry {
            connection: swap.connection.clone(),
            staged: staged.clone().join(name.as_str()).to_string(),
            final_key: folder.clone().join(name.as_str()).to_string(),
        })
        .collect();
    let retire: Vec<RetiredObject> = swap
        .removed
        .iter()
        .map(|name| RetiredObject {
            connection: swap.connection.clone(),
            key: folder.clone().join(name.as_str()).to_string(),
        })
        .collect();
    super::commit::publish(connections, &publish, &retire).await
}

/// Whether none of the added files is in the staged folder or the published one.
async fn abandoned(handle: &StoreHandle, swap: &PartitionSwap) -> Result<bool> {
    let folder = parse(&swap.folder);
    let staged = parse(&swap.staged);
    for name in &swap.added {
        for path in [
            folder.clone().join(name.as_str()),
            staged.clone().join(name.as_str()),
        ] {
            match handle.store.head(&path).await {
                Ok(_) => return Ok(false),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(Error::external(
                        format!("cannot look up {path} in {}", handle.display),
                        e,
                    ));
                }
            }
        }
    }
    Ok(true)
}

fn parse(key: &str) -> StorePath {
    StorePath::parse(key).unwrap_or_else(|_| StorePath::from(key))
}

/// The local directories of the swap's folders, when the store is a local disk and the
/// paths need no decoding (no `%` escapes).
fn local_folders(handle: &StoreHandle, swap: &PartitionSwap) -> Option<(PathBuf, PathBuf)> {
    let root = handle.local_root.as_ref()?;
    if !handle.prefix.as_ref().is_empty() || swap.folder.contains('%') || swap.staged.contains('%')
    {
        return None;
    }
    Some((root.join(&swap.folder), root.join(&swap.staged)))
}

enum Exchange {
    /// The folders were exchanged (now or by an earlier attempt) and the old one deleted.
    Done,
    /// This folder cannot be exchanged: publish file by file.
    Unsupported,
}

fn exchange(folder: &Path, staged: &Path, swap: &PartitionSwap) -> std::io::Result<Exchange> {
    let removed: BTreeSet<&str> = swap.removed.iter().map(String::as_str).collect();
    let swapped = !swap.added.is_empty() && swap.added.iter().all(|n| folder.join(n).exists());
    if !swapped {
        if !staged.is_dir() || !folder.is_dir() {
            return Ok(Exchange::Unsupported);
        }
        for entry in std::fs::read_dir(folder)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                // Hard links cannot carry a subfolder into the new folder.
                return Ok(Exchange::Unsupported);
            }
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| removed.contains(n)) {
                continue;
            }
            let link = staged.join(&name);
            match std::fs::hard_link(entry.path(), &link) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if unsupported(&e) => return Ok(Exchange::Unsupported),
                Err(e) => return Err(e),
            }
        }
        match rename_exchange(staged, folder) {
            Ok(()) => {}
            Err(e) if unsupported(&e) => return Ok(Exchange::Unsupported),
            Err(e) => return Err(e),
        }
    }
    // `staged` now holds the old folder. A file published into it after the links were made
    // belongs in the new folder; everything else in it is replaced or linked.
    if staged.is_dir() {
        for entry in std::fs::read_dir(staged)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| removed.contains(n)) || folder.join(&name).exists() {
                continue;
            }
            std::fs::rename(entry.path(), folder.join(&name))?;
        }
        std::fs::remove_dir_all(staged)?;
    }
    Ok(Exchange::Done)
}

/// Errors that say this file system or folder cannot take part in an exchange.
fn unsupported(e: &std::io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EXDEV | libc::EPERM | libc::EOPNOTSUPP)
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        e.kind() == std::io::ErrorKind::Unsupported
    }
}

/// Exchanges two existing paths atomically.
#[cfg(target_os = "linux")]
fn rename_exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths that live across the call.
    let status = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Exchanges two existing paths atomically (not available here: publish file by file).
#[cfg(not(target_os = "linux"))]
fn rename_exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swap(added: &[&str], removed: &[&str]) -> PartitionSwap {
        PartitionSwap {
            connection: "lake".into(),
            folder: "t/p".into(),
            staged: "_pipectl/staging/r/t/p".into(),
            added: added.iter().map(|s| s.to_string()).collect(),
            removed: removed.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A lake with a partition folder and a compaction's staged folder for it (both empty).
    fn folders() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("t/p");
        let staged = dir.path().join("_pipectl/staging/r/t/p");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::create_dir_all(&staged).unwrap();
        (dir, folder, staged)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    /// The folders are exchanged once: files that stay are linked over, a file published in
    /// between is moved over, and a second apply (a recovery) changes nothing.
    #[test]
    fn a_local_swap_exchanges_the_folders_and_can_be_repeated() {
        let (_dir, folder, staged) = folders();
        for name in ["a", "b", "big", "theirs"] {
            std::fs::write(folder.join(name), name).unwrap();
        }
        std::fs::write(staged.join("ab"), "ab").unwrap();
        let s = swap(&["ab"], &["a", "b"]);
        match exchange(&folder, &staged, &s).unwrap() {
            Exchange::Done => {}
            // A file system without RENAME_EXCHANGE (the caller then publishes file by file).
            Exchange::Unsupported => return,
        }
        assert_eq!(names(&folder), ["ab", "big", "theirs"]);
        assert_eq!(std::fs::read_to_string(folder.join("big")).unwrap(), "big");
        assert!(!staged.exists());
        assert!(matches!(
            exchange(&folder, &staged, &s).unwrap(),
            Exchange::Done
        ));
        assert_eq!(names(&folder), ["ab", "big", "theirs"]);
    }

    #[test]
    fn a_swap_interrupted_after_the_exchange_moves_late_files_over() {
        let (_dir, folder, staged) = folders();
        // As left by a process killed right after the exchange: the new set is published, the
        // old folder (with a file a run published meanwhile) waits in staging.
        std::fs::write(folder.join("ab"), "ab").unwrap();
        std::fs::write(staged.join("a"), "a").unwrap();
        std::fs::write(staged.join("late"), "late").unwrap();
        let s = swap(&["ab"], &["a"]);
        assert!(matches!(
            exchange(&folder, &staged, &s).unwrap(),
            Exchange::Done
        ));
        assert_eq!(names(&folder), ["ab", "late"]);
        assert!(!staged.exists());
    }

    /// A folder with a subfolder cannot be exchanged (hard links cannot carry a folder): it is
    /// left as it is for the file-by-file publish.
    #[test]
    fn a_folder_with_subfolders_is_not_exchanged() {
        let (_dir, folder, staged) = folders();
        std::fs::create_dir_all(folder.join("nested")).unwrap();
        std::fs::write(folder.join("a"), "a").unwrap();
        std::fs::write(staged.join("ab"), "ab").unwrap();
        let s = swap(&["ab"], &["a"]);
        assert!(matches!(
            exchange(&folder, &staged, &s).unwrap(),
            Exchange::Unsupported
        ));
        assert_eq!(names(&folder), ["a", "nested"]);
        assert_eq!(names(&staged), ["ab"]);
    }
}
