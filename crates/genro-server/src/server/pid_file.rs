//! `[server] pid_file`: the serving process's pid, written once its sockets listen and before it
//! reports ready (a process that cannot write it does not start), removed when it stops, unless
//! a process started by an upgrade has written its own since.

use std::path::{Path, PathBuf};

/// The pid file this process wrote.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid to `path` (through a file beside it, renamed, so that a reader
    /// never sees half a pid).
    pub(crate) fn write(path: &Path) -> Result<Self, String> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        std::fs::write(&partial, format!("{}\n", std::process::id()))
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&partial);
                format!(
                    "server.pid_file: cannot write {}: {e}; the server does not start without it",
                    path.display()
                )
            })?;
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Removes the file if it still names this process.
    pub(crate) fn remove(self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|text| text.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
