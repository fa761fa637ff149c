//! Small JSON files written atomically (temp file, fsync, rename): the session's state, spec, turn order
//! and exit, and the workspace records. A reader sees the old or the new content, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a JSON file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonFileError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{path} is not valid JSON for this worker: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes `value` as JSON to `path` atomically and durably.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_bytes(path, &bytes)
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = fs_err::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs_err::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, JsonFileError> {
    let bytes = match fs_err::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| JsonFileError::Parse {
            path: path.to_path_buf(),
            source,
        })
}
