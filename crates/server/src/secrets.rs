//! The token key: where it comes from, and the checks a key must pass.
//!
//! A key set by the operator (`BOXOFFICE_SECRET_KEY`) must have at least 32 bytes:
//! an empty or short key would let anyone who guesses it mint an admin token, so
//! the start stops with a message saying why. Unset, the embedded node generates
//! one and keeps it in `<data_dir>/secret.key`, readable by its owner only (0600),
//! outside the database: a copy of the database (a backup, a support bundle, a
//! SQL injection) does not carry the key that signs its admins' tokens. The
//! distributed mode keeps the contract of `API.md` (unset: generated once and kept
//! in the durable store, so every node shares it); `docs/security.md` tells
//! operators to set `BOXOFFICE_SECRET_KEY` there instead.

use anyhow::{bail, Context};
use base64::Engine;
use std::io::Write;
use std::path::Path;

/// The least a token key may have.
pub const MIN_KEY_BYTES: usize = 32;

/// The operator's key, checked.
pub fn configured(key: &str) -> anyhow::Result<Vec<u8>> {
    if key.len() < MIN_KEY_BYTES {
        bail!(
            "BOXOFFICE_SECRET_KEY is {} bytes long: it must be at least {MIN_KEY_BYTES} bytes \
             (for example `openssl rand -base64 48`), or unset it to have one generated",
            key.len()
        );
    }
    Ok(key.as_bytes().to_vec())
}

/// The key in `file`, created (0600, whole or not at all) if there is none.
pub fn from_file(file: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(file) {
        Ok(key) => return checked_file(file, key),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    }
    let dir = file.parent().context("the key file has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(rand::random::<[u8; 32]>())
        .into_bytes();
    // Written in full under a private name, then linked into place: a second
    // process starting at once either wins the link or reads the winner's key,
    // never a half-written one.
    let tmp = dir.join(format!(".secret.key.{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = std::fs::remove_file(&tmp);
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&key)?;
    f.sync_all()?;
    drop(f);
    let linked = std::fs::hard_link(&tmp, file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(file = %file.display(), "generated the token key");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            checked_file(file, std::fs::read(file)?)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", file.display())),
    }
}

fn checked_file(file: &Path, key: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by others (mode {:o}): `chmod 600` it",
                file.display(),
                mode & 0o777
            );
        }
    }
    let key = String::from_utf8(key)
        .map(|k| k.trim().to_owned())
        .with_context(|| format!("{} is not text", file.display()))?;
    configured(&key).with_context(|| format!("the key in {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused_with_the_reason() {
        for k in ["", "x", &"k".repeat(31)] {
            let e = configured(k).unwrap_err().to_string();
            assert!(e.contains("at least 32 bytes"), "{e}");
        }
        assert_eq!(configured(&"k".repeat(32)).unwrap().len(), 32);
    }

    #[test]
    fn the_key_file_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join("secret.key");
        let a = from_file(&file).unwrap();
        assert!(a.len() >= 32);
        assert_eq!(from_file(&file).unwrap(), a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(from_file(&file)
                .unwrap_err()
                .to_string()
                .contains("chmod 600"));
        }
    }
}
