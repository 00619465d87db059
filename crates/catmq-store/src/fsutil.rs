//! Small file helpers: positioned I/O with error context, directory fsync, file and topic names.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// A file opened by the store, with its path for error messages.
#[derive(Debug)]
pub(crate) struct DataFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl DataFile {
    /// Opens (creating if missing) a file for reading and writing.
    pub(crate) fn open_rw(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::io("open", path, e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| StoreError::io("stat", &self.path, e))
    }

    /// Where the data ends: the end of the last data region (holes and never-written
    /// preallocated space after it read as zeros). The length where the file system cannot say.
    pub(crate) fn data_end(&self) -> Result<u64> {
        use rustix::fs::{seek, SeekFrom};
        let len = self.len()?;
        let (mut end, mut off) = (0u64, 0u64);
        while off < len {
            let Ok(data) = seek(&self.file, SeekFrom::Data(off as i64)) else {
                break;
            };
            let hole = seek(&self.file, SeekFrom::Hole(data as i64)).unwrap_or(len);
            if hole <= off {
                return Ok(len);
            }
            end = hole.min(len);
            off = hole;
        }
        Ok(end)
    }

    pub(crate) fn write_at(&self, buf: &[u8], pos: u64) -> Result<()> {
        self.file
            .write_all_at(buf, pos)
            .map_err(|e| StoreError::io("write", &self.path, e))
    }

    /// Reads up to `buf.len()` bytes; returns how many were read (short at end of file).
    pub(crate) fn read_at(&self, buf: &mut [u8], pos: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StoreError::io("read", &self.path, e)),
            }
        }
        Ok(done)
    }

    pub(crate) fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io("fsync", &self.path, e))
    }

    pub(crate) fn truncate(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| StoreError::io("truncate", &self.path, e))
    }
}

/// Creates a directory (and parents) and fsyncs its parent so the entry survives a crash.
pub(crate) fn create_dir(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|e| StoreError::io("mkdir", path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Fsyncs a directory, making created, renamed or removed entries durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync dir", path, e))
}

/// Writes `data` to `path` atomically: a temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let f = DataFile::open_rw(&tmp)?;
    f.truncate(0)?;
    f.write_at(data, 0)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Removes a file, ignoring one that is already gone.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

/// The file name of a file that starts at `offset`: 20 zero-padded digits (as RocketMQ).
pub(crate) fn offset_name(offset: u64) -> String {
    format!("{offset:020}")
}

/// Lists the files of `dir` whose names are offsets, sorted by offset.
pub(crate) fn list_offset_files(dir: &Path, ext: Option<&str>) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    for entry in rd {
        let path = entry.map_err(|e| StoreError::io("list", dir, e))?.path();
        let matches_ext = path.extension().and_then(|e| e.to_str()) == ext;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if matches_ext && stem.len() == 20 {
            if let Ok(off) = stem.parse::<u64>() {
                out.push((off, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Escapes a topic name into a safe directory name, reversibly: ASCII letters, digits, `_`, `-`
/// and `|` stay; every other byte becomes `%XX`.
pub(crate) fn escape_topic(topic: &str) -> String {
    let mut out = String::with_capacity(topic.len());
    for b in topic.bytes() {
        if stays(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether [`escape_topic`] keeps byte `b` as it is (every other byte takes three).
fn stays(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|')
}

/// The longest directory name the store makes for a topic (a file name's limit on Linux file
/// systems): an append to a topic whose [`escaped_topic_len`] is longer is refused.
pub const MAX_TOPIC_DIR_NAME: usize = 255;

/// The length of `topic`'s directory name, as [`escape_topic`] writes it.
pub fn escaped_topic_len(topic: &str) -> usize {
    topic.bytes().map(|b| if stays(b) { 1 } else { 3 }).sum()
}

/// Fails unless `topic`'s directory name fits in [`MAX_TOPIC_DIR_NAME`] bytes.
pub(crate) fn check_topic_name(topic: &str) -> Result<()> {
    let escaped = escaped_topic_len(topic);
    if escaped > MAX_TOPIC_DIR_NAME {
        return Err(StoreError::TopicNameTooLong {
            len: topic.len(),
            escaped,
            max: MAX_TOPIC_DIR_NAME,
        });
    }
    Ok(())
}

/// Reverses [`escape_topic`]; `None` for a name it did not produce.
pub(crate) fn unescape_topic(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_escaping_round_trips_and_is_path_safe() {
        for t in [
            "TopicTest",
            "%RETRY%group-1",
            "../../etc",
            "a/b",
            "ünï",
            "x|y_z",
            "",
        ] {
            let e = escape_topic(t);
            assert!(!e.contains('/') && !e.contains(".."), "{e}");
            assert_eq!(unescape_topic(&e).as_deref(), Some(t));
        }
        assert_eq!(escape_topic("%RETRY%g"), "%25RETRY%25g");
        assert_eq!(unescape_topic("%Z1"), None);
    }

    #[test]
    fn offset_names_sort_numerically() {
        assert_eq!(offset_name(1 << 30), "00000000001073741824");
        let dir = tempfile::tempdir().unwrap();
        for off in [1 << 30, 0, 5] {
            std::fs::write(dir.path().join(offset_name(off)), b"").unwrap();
        }
        std::fs::write(dir.path().join("junk"), b"").unwrap();
        let offs: Vec<u64> = list_offset_files(dir.path(), None)
            .unwrap()
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        assert_eq!(offs, vec![0, 5, 1 << 30]);
    }
}
