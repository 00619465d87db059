//! Small JSON metadata files (topics, groups, offsets), replaced atomically: write a temporary
//! file, fsync it, rename it over the old one, fsync the directory. A crash leaves the old or the
//! new file, never a torn one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{BrokerError, Result};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BrokerError + '_ {
    move |source| BrokerError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads `path` as JSON; `None` if it does not exist.
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| BrokerError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        })
}

/// Writes `value` to `path` as pretty JSON, atomically and durably.
pub(crate) fn save<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| BrokerError::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = tmp_path(path);
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn save_replaces_and_load_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.json");
        assert_eq!(load::<BTreeMap<String, i64>>(&p).unwrap(), None);
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), 1i64);
        save(&p, &m).unwrap();
        m.insert("b".to_string(), 2);
        save(&p, &m).unwrap();
        assert_eq!(load::<BTreeMap<String, i64>>(&p).unwrap(), Some(m));
        assert!(!tmp_path(&p).exists());
        std::fs::write(&p, b"{not json").unwrap();
        assert!(matches!(
            load::<BTreeMap<String, i64>>(&p),
            Err(BrokerError::Corrupt { .. })
        ));
    }
}
