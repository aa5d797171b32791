//! Child processes owned by a test: output captured to a log file, killed on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot create log file {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed with {status}: {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// A running child process; killed (SIGKILL) and reaped when dropped, panics included.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command`, sending stdout and stderr to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, ProcessError> {
        let file = File::create(log).map_err(|source| ProcessError::Log {
            path: log.to_owned(),
            source,
        })?;
        let err = file.try_clone().map_err(|source| ProcessError::Log {
            path: log.to_owned(),
            source,
        })?;
        command.stdin(Stdio::null()).stdout(file).stderr(err);
        let child = command.spawn().map_err(|source| ProcessError::Spawn {
            program: format!("{command:?}"),
            source,
        })?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started process");
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The captured output so far (for failure messages).
    pub fn log_tail(&self, max_bytes: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(max_bytes);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends SIGKILL and waits, as a crash would.
    pub fn kill(&mut self) {
        if let Err(error) = self.child.kill() {
            tracing::debug!(name = %self.name, %error, "kill failed (already exited?)");
        }
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `grace` before SIGKILL.
    pub fn terminate(&mut self, grace: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a command to completion and returns its stdout; a non-zero exit is an error with stderr.
pub fn run(mut command: Command) -> Result<String, ProcessError> {
    let description = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ProcessError::Spawn {
            program: description.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(ProcessError::Failed {
            command: description,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Polls `check` every 50 ms until it returns `Some`, or gives up after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
