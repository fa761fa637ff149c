//! Advisory whole-file locks (`flock`) that the kernel drops when their holder dies, even by SIGKILL:
//! the liveness signal of a session's supervisor and the mutual exclusion between serve processes.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// An exclusive lock, released on drop.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<std::fs::File>,
    path: PathBuf,
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map(fs_err::File::into_parts)
        .map(|(file, _)| file)
}

fn lock_error(path: &Path, errno: Errno) -> std::io::Error {
    std::io::Error::new(
        std::io::Error::from(errno).kind(),
        format!("cannot lock {}: {errno}", path.display()),
    )
}

impl FileLock {
    /// Takes the lock if nobody holds it; `Ok(None)` when it is held.
    pub fn try_exclusive(path: &Path) -> std::io::Result<Option<FileLock>> {
        let file = open(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(FileLock {
                _lock: lock,
                path: path.to_path_buf(),
            })),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(lock_error(path, errno)),
        }
    }

    /// Waits for the lock (blocking the thread). Only for locks held briefly, or in a blocking task.
    pub fn exclusive(path: &Path) -> std::io::Result<FileLock> {
        let mut file = open(path)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => {
                    return Ok(FileLock {
                        _lock: lock,
                        path: path.to_path_buf(),
                    });
                }
                Err((f, Errno::EINTR)) => file = f,
                Err((_, errno)) => return Err(lock_error(path, errno)),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_drops() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.lock");
        let first = FileLock::try_exclusive(&path).unwrap().expect("free");
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(first);
        assert!(FileLock::try_exclusive(&path).unwrap().is_some());
        let _again = FileLock::exclusive(&path).unwrap();
    }
}
