//! The session saved by `ccag login`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub endpoint: String,
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
}

impl Session {
    /// Whether the session's expiry has passed; unparseable times count as
    /// unexpired and leave the decision to the server.
    pub fn is_expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        match chrono::DateTime::parse_from_rfc3339(self.expires_at.trim()) {
            Ok(t) => t <= now,
            Err(_) => false,
        }
    }
}

/// `$CCAG_CONFIG_DIR`, else `$XDG_CONFIG_HOME/ccag`, else `$HOME/.config/ccag`.
pub fn config_dir() -> Result<PathBuf, CliError> {
    config_dir_from(|k| std::env::var_os(k))
}

fn config_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf, CliError> {
    let nonempty = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = nonempty("CCAG_CONFIG_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = nonempty("XDG_CONFIG_HOME") {
        return Ok(dir.join("ccag"));
    }
    if let Some(home) = nonempty("HOME") {
        return Ok(home.join(".config").join("ccag"));
    }
    Err(CliError::other("cannot find a configuration directory: set CCAG_CONFIG_DIR or HOME"))
}

pub fn session_path(dir: &Path) -> PathBuf {
    dir.join("session.json")
}

/// The saved session, if there is one.
pub fn load(dir: &Path) -> Result<Option<Session>, CliError> {
    let path = session_path(dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::other(format!("cannot read {}: {e}", path.display()))),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        CliError::not_logged_in(format!(
            "the saved session {} is damaged ({e}); run `ccag login` again",
            path.display()
        ))
    })
}

/// Saves the session: the directory mode 0700, the file mode 0600, replaced
/// atomically.
pub fn save(dir: &Path, session: &Session) -> Result<PathBuf, CliError> {
    let fail = |what: &str, p: &Path, e: std::io::Error| CliError::other(format!("cannot {what} {}: {e}", p.display()));
    create_private_dir(dir).map_err(|e| fail("create", dir, e))?;
    let path = session_path(dir);
    let tmp = dir.join(format!(".session.json.{}.tmp", std::process::id()));
    let body = serde_json::to_string_pretty(session)
        .map_err(|e| CliError::other(format!("cannot encode the session: {e}")))?;
    let write = || -> std::io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        fail("write", &path, e)
    })?;
    Ok(path)
}

/// Deletes the saved session; false when there was none.
pub fn delete(dir: &Path) -> Result<bool, CliError> {
    let path = session_path(dir);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::other(format!("cannot delete {}: {e}", path.display()))),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            fs::create_dir_all(parent)?;
        }
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ccag-session-test-{tag}-{}-{:x}", std::process::id(), random_u64()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn random_u64() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(0);
        h.finish()
    }

    #[test]
    fn config_dir_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
        };
        assert_eq!(
            config_dir_from(env(&[("CCAG_CONFIG_DIR", "/c"), ("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/c")
        );
        assert_eq!(
            config_dir_from(env(&[("CCAG_CONFIG_DIR", ""), ("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/x/ccag")
        );
        assert_eq!(config_dir_from(env(&[("HOME", "/h")])).unwrap(), PathBuf::from("/h/.config/ccag"));
        assert!(config_dir_from(env(&[])).is_err());
    }

    #[test]
    fn save_load_delete_round_trip() {
        let root = temp_dir("rt");
        let dir = root.join("nested").join("ccag");
        assert_eq!(load(&dir).unwrap(), None);
        let s = Session {
            endpoint: "http://127.0.0.1:1".into(),
            token: "tok".into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
        };
        let path = save(&dir, &s).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(s.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        // Saving again replaces it.
        let s2 = Session { token: "tok2".into(), ..s };
        save(&dir, &s2).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(s2));
        assert!(delete(&dir).unwrap());
        assert!(!delete(&dir).unwrap());
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn damaged_session_is_not_logged_in() {
        let dir = temp_dir("bad");
        fs::create_dir_all(&dir).unwrap();
        fs::write(session_path(&dir), "{not json").unwrap();
        let err = load(&dir).unwrap_err();
        assert_eq!(err.code, crate::error::EXIT_UNAUTHENTICATED);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn expiry() {
        let now = chrono::DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let s = |t: &str| Session { endpoint: String::new(), token: String::new(), expires_at: t.into() };
        assert!(s("2025-05-31T23:59:59Z").is_expired(now));
        assert!(!s("2025-06-01T00:00:01+00:00").is_expired(now));
        assert!(!s("").is_expired(now));
        assert!(!s("garbage").is_expired(now));
    }
}
