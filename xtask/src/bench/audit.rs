//! The apiserver's audit log as the benchmarks read it: a mark taken before a run, then
//! everything logged since, across a rotation of the log.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};

/// Where the log ended when the mark was taken.
#[derive(Debug, Clone, Copy)]
pub struct AuditMark {
    /// The log file's inode; `None` when there was no log yet.
    inode: Option<u64>,
    offset: u64,
}

impl AuditMark {
    pub fn now(log: &Path) -> Self {
        match fs::metadata(log) {
            Ok(m) => Self {
                inode: Some(m.ino()),
                offset: m.len(),
            },
            Err(_) => Self {
                inode: None,
                offset: 0,
            },
        }
    }

    /// What was logged since the mark. When the apiserver rotated the log meanwhile
    /// (renamed it to `audit-<time>.log` and began a new one), the rest of the renamed
    /// file comes first: it is found by its inode, which a rename keeps.
    pub fn read_since(&self, log: &Path) -> Result<String> {
        let current = fs::metadata(log).with_context(|| format!("reading {}", log.display()))?;
        let Some(inode) = self.inode.filter(|&i| i != current.ino()) else {
            return read_from(log, self.offset);
        };
        let dir = log.parent().context("the audit log's directory")?;
        let rotated = fs::read_dir(dir)?
            .filter_map(Result::ok)
            .find(|e| e.metadata().is_ok_and(|m| m.ino() == inode))
            .context(
                "the audit log was rotated twice during the run and its first part is gone; \
                 run the benchmark again (or raise audit-log-maxsize in xtask/src/cluster/mod.rs)",
            )?;
        Ok(read_from(&rotated.path(), self.offset)? + &read_from(log, 0)?)
    }
}

fn read_from(path: &Path, offset: u64) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_came_after_the_mark_across_a_rotation() {
        let dir = std::env::temp_dir().join(format!("drover-audit-mark-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("audit.log");
        fs::write(&log, "a\n").unwrap();
        let mark = AuditMark::now(&log);
        fs::write(&log, "a\nb\n").unwrap();
        assert_eq!(mark.read_since(&log).unwrap(), "b\n");

        fs::rename(&log, dir.join("audit-2026-12-02T03-49-38.957.log")).unwrap();
        fs::write(&log, "c\nd\n").unwrap();
        assert_eq!(mark.read_since(&log).unwrap(), "b\nc\nd\n");

        // A second rotation removed the part after the mark (one backup is kept).
        fs::remove_file(dir.join("audit-2026-12-02T03-49-38.957.log")).unwrap();
        assert!(mark.read_since(&log).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
