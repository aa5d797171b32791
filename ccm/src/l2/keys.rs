//! The gossip key files: `--l2-gossip-key-file` (the key the speaker signs with) and, in the
//! same directory, `previous-key` if it exists (also accepted). Read at start, and read again
//! every [`RECHECK`]: the kubelet updates a mounted Secret in place, so a key rotation needs
//! no restart (docs/l2.md says how to rotate).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use super::membership::{GossipKey, GossipKeys, MembershipError};

/// The name of the accepted second key, beside the key file.
pub(crate) const PREVIOUS_KEY: &str = "previous-key";

/// How often the files are read again.
pub(crate) const RECHECK: Duration = Duration::from_secs(5);

/// Why the keys cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyFileError {
    #[error("reading the gossip key {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the gossip key in {path}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: MembershipError,
    },
}

/// The files' bytes as last read. Holds secrets: no `Debug`.
#[derive(Clone, PartialEq, Eq)]
struct Contents {
    key: Vec<u8>,
    previous: Option<Vec<u8>>,
}

/// The key files and the keys they held when last read.
pub(crate) struct KeyFiles {
    key: PathBuf,
    previous: PathBuf,
    seen: Contents,
    keys: GossipKeys,
}

impl std::fmt::Debug for KeyFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (f.debug_struct("KeyFiles"))
            .field("key", &self.key)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

impl KeyFiles {
    /// Reads the key file `key` and its `previous-key` beside it.
    pub(crate) fn read(key: &Path) -> Result<Self, KeyFileError> {
        let previous = key.with_file_name(PREVIOUS_KEY);
        let seen = contents(key, &previous)?;
        let keys = keys_of(&seen, key, &previous)?;
        Ok(Self {
            key: key.to_owned(),
            previous,
            seen,
            keys,
        })
    }

    /// The keys as last read.
    pub(crate) fn keys(&self) -> GossipKeys {
        self.keys.clone()
    }

    /// Reads the files again every [`RECHECK`] and sends the keys whenever they changed. A
    /// file that cannot be read, or a key too short, is logged (once per content) and the
    /// keys in use stay.
    pub(crate) async fn follow(mut self, keys: watch::Sender<GossipKeys>) {
        let mut failed: Option<String> = None;
        loop {
            tokio::time::sleep(RECHECK).await;
            let read = contents(&self.key, &self.previous).and_then(|seen| {
                let changed = seen != self.seen;
                let new = if changed {
                    Some(keys_of(&seen, &self.key, &self.previous)?)
                } else {
                    None
                };
                Ok((seen, new))
            });
            match read {
                Ok((seen, Some(new))) => {
                    tracing::info!(
                        previous_key = new.two(),
                        "the gossip keys changed: signing with the new key"
                    );
                    self.seen = seen;
                    self.keys = new.clone();
                    failed = None;
                    keys.send_replace(new);
                }
                Ok((_, None)) => failed = None,
                Err(error) => {
                    let error = crate::error_chain(&error);
                    if failed.as_ref() != Some(&error) {
                        tracing::error!(%error, "cannot read the changed gossip keys; keeping the keys in use");
                    }
                    failed = Some(error);
                }
            }
        }
    }
}

fn contents(key: &Path, previous: &Path) -> Result<Contents, KeyFileError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let previous = match std::fs::exists(previous) {
        Ok(false) => None,
        Ok(true) => Some(read(previous)?),
        Err(source) => {
            return Err(KeyFileError::Read {
                path: previous.to_owned(),
                source,
            });
        }
    };
    Ok(Contents {
        key: read(key)?,
        previous,
    })
}

fn keys_of(seen: &Contents, key: &Path, previous: &Path) -> Result<GossipKeys, KeyFileError> {
    let parse = |bytes: &[u8], path: &Path| {
        GossipKey::new(bytes).map_err(|source| KeyFileError::Invalid {
            path: path.to_owned(),
            source,
        })
    };
    let also = match &seen.previous {
        Some(bytes) => Some(parse(bytes, previous)?),
        None => None,
    };
    Ok(GossipKeys::new(parse(&seen.key, key)?, also))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_previous_key_beside_the_key_is_accepted_and_a_change_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, [1; 32]).unwrap();
        let files = KeyFiles::read(&key).unwrap();
        assert!(!files.keys().two());
        let (tx, mut rx) = watch::channel(files.keys());
        let follow = tokio::spawn(files.follow(tx));
        std::fs::write(dir.path().join(PREVIOUS_KEY), [2; 32]).unwrap();
        tokio::time::timeout(RECHECK * 2, rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(rx.borrow_and_update().two());
        // A key too short is refused; the keys in use stay.
        std::fs::write(&key, [3; 8]).unwrap();
        let refused = tokio::time::timeout(RECHECK * 3, rx.changed()).await;
        assert!(refused.is_err(), "a key of 8 bytes was taken");
        std::fs::remove_file(dir.path().join(PREVIOUS_KEY)).unwrap();
        std::fs::write(&key, [3; 32]).unwrap();
        tokio::time::timeout(RECHECK * 2, rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(!rx.borrow().two());
        follow.abort();
        assert!(matches!(
            KeyFiles::read(&dir.path().join("absent")),
            Err(KeyFileError::Read { .. })
        ));
    }
}
