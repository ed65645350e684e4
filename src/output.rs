//! Where a command's output goes: every file dlc writes (a checkpoint, an
//! ONNX model, predictions, a plot, a formatted program, the REPL's
//! `:save`) goes through [`prepare`] and a [`Sink`].
//!
//! - A path that does not exist, or is a regular file, is written to a
//!   temporary beside it, synced, and renamed over it once the whole output
//!   is written ([`Sink::commit`]): a crash or an error never leaves a
//!   half-written file, and the old file survives a failed write. Symbolic
//!   links are written through (their target is replaced, the link stays).
//! - A path that exists and is not a regular file (a FIFO, a device such as
//!   `/dev/null`, `/dev/stdout` into a pipe) is opened and written to as it
//!   is, never renamed over; so is a regular file reached through
//!   `/dev/fd` or `/proc` (an open descriptor: appended to, as the shell
//!   opened it).
//! - An output that is one of the command's inputs (the same device and
//!   inode, whatever the path says) is refused before any work is done.
//!
//! The output is streamed: memory does not grow with its size.
//!
//! Invariant: nothing here replaces what the user did not ask to replace,
//! and nothing is renamed into place before it is complete.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A planned output: checked, not yet opened.
#[derive(Debug, Clone)]
pub struct Output {
    /// The path as the user gave it (for messages).
    shown: PathBuf,
    how: How,
}

#[derive(Debug, Clone)]
enum How {
    /// A new file in `dir`, renamed over `target` when complete.
    Replace { target: PathBuf, dir: PathBuf },
    /// The existing path opened and written to as it is.
    Direct { append: bool },
}

/// One of a command's inputs, named for the message that refuses to
/// write over it (`("the checkpoint", path)`).
pub type Input<'a> = (&'a str, &'a Path);

/// Checks that `path` can take the output and is none of `inputs`, and
/// decides how to write it. Nothing is created or opened: a FIFO would
/// block until its reader comes, and the work that makes the output has
/// not run yet.
pub fn prepare(path: &Path, inputs: &[Input]) -> Result<Output, String> {
    let shown = path.to_path_buf();
    let fail = |why: String| Err(format!("cannot write {}: {why}", path.display()));
    let meta = std::fs::metadata(path).ok();
    if let Some((role, input)) = inputs.iter().find(|(_, i)| same_file(path, i)) {
        return fail(format!(
            "it is {role} ({}), which this command uses; write the output elsewhere",
            input.display()
        ));
    }
    if let Some(m) = &meta {
        if m.is_dir() {
            return fail("it is a folder".to_string());
        }
        if !m.is_file() {
            return Ok(Output {
                shown,
                how: How::Direct { append: false },
            });
        }
    }
    let target = resolve_links(path);
    if meta.is_some() && names_a_descriptor(path) {
        return Ok(Output {
            shown,
            how: How::Direct { append: true },
        });
    }
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    if !dir.is_dir() {
        return fail(format!("the folder {} does not exist", dir.display()));
    }
    let probe = dir.join(format!("{}{}", temp_prefix(&target), std::process::id()));
    if let Err(e) = File::create(&probe).and_then(|_| std::fs::remove_file(&probe)) {
        return fail(e.to_string());
    }
    Ok(Output {
        shown,
        how: How::Replace { target, dir },
    })
}

/// Whether `a` and `b` are one file: the same device and inode when both
/// exist, else the same place once links and `..` are resolved (an output
/// not yet written against another that will be).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        (Err(_), Err(_)) => place(a).is_some_and(|p| Some(p) == place(b)),
        _ => false,
    }
}

/// Where a path that may not exist yet would be: its folder resolved,
/// then its name.
fn place(p: &Path) -> Option<PathBuf> {
    let p = resolve_links(p);
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some(std::fs::canonicalize(dir).ok()?.join(p.file_name()?))
}

/// Whether `path` names an open file descriptor (`/dev/stdout`,
/// `/dev/fd/3`, `/proc/self/fd/1`) rather than a place in a folder.
fn names_a_descriptor(path: &Path) -> bool {
    ["/dev/stdout", "/dev/stderr", "/dev/fd", "/proc"]
        .iter()
        .any(|root| path.starts_with(root))
}

impl Output {
    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Opens the output for writing: the temporary beside a regular file,
    /// or the path itself.
    pub fn create(&self) -> Result<Sink, String> {
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", self.shown.display());
        match &self.how {
            How::Replace { target, dir } => {
                let prefix = temp_prefix(target);
                remove_stale_temporaries(dir, &prefix);
                let tmp = dir.join(format!("{prefix}{}", std::process::id()));
                let file = File::create(&tmp).map_err(fail)?;
                // A replaced file keeps its permissions.
                if let Ok(m) = std::fs::metadata(target) {
                    let _ = file.set_permissions(m.permissions());
                }
                Ok(Sink {
                    file: BufWriter::with_capacity(1 << 16, file),
                    out: self.clone(),
                    tmp: Some(tmp),
                })
            }
            How::Direct { append } => {
                let file = OpenOptions::new()
                    .write(true)
                    .append(*append)
                    .open(&self.shown)
                    .map_err(fail)?;
                Ok(Sink {
                    file: BufWriter::with_capacity(1 << 16, file),
                    out: self.clone(),
                    tmp: None,
                })
            }
        }
    }

    /// Writes `bytes` as the whole output.
    pub fn write(&self, bytes: &[u8]) -> Result<(), String> {
        let mut sink = self.create()?;
        sink.write_all(bytes)
            .map_err(|e| format!("cannot write {}: {e}", self.shown.display()))?;
        sink.commit()
    }
}

/// An output being written. Dropped without [`Sink::commit`], it removes
/// its temporary and the old file stays as it was.
pub struct Sink {
    file: BufWriter<File>,
    out: Output,
    tmp: Option<PathBuf>,
}

impl Sink {
    /// Completes the output: flushed, synced and renamed into place.
    pub fn commit(mut self) -> Result<(), String> {
        let shown = self.out.shown.display().to_string();
        let fail = |e: std::io::Error| format!("cannot write {shown}: {e}");
        self.file.flush().map_err(fail)?;
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        let done = (|| {
            self.file.get_ref().sync_all()?;
            if let How::Replace { target, dir } = &self.out.how {
                std::fs::rename(&tmp, target)?;
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done.map_err(fail)
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Writes `bytes` to `path` (see the module's rules), refusing a path
/// that is one of `inputs`.
pub fn write(path: &Path, inputs: &[Input], bytes: &[u8]) -> Result<(), String> {
    prepare(path, inputs)?.write(bytes)
}

/// `path` with symbolic links followed (at most 40, as the kernel does).
fn resolve_links(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&p) else {
            break;
        };
        p = match p.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    p
}

/// The temporary's name before the process id: `.NAME.tmp-` (a long name
/// shortened, with a hash, to stay within a file name's 255 bytes).
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.len() <= 200 {
        return format!(".{name}.tmp-");
    }
    let mut cut = 150;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        ".{}~{}.tmp-",
        &name[..cut],
        &crate::rng::text_hash(&name)[..8]
    )
}

/// Removes `dir/PREFIX<pid>` files whose process is no longer running (a
/// save killed midway); a live process's temporary is left alone.
fn remove_stale_temporaries(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dlc-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch");
        d
    }

    #[test]
    fn a_regular_file_is_replaced_whole_and_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("regular");
        let f = d.join("out.csv");
        std::fs::write(&f, "old").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write(&f, &[], b"new").expect("written");
        assert_eq!(std::fs::read(&f).expect("read"), b"new");
        let mode = std::fs::metadata(&f).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // Only the file: no temporary left beside it.
        assert_eq!(std::fs::read_dir(&d).expect("dir").count(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_abandoned_sink_leaves_the_old_file_and_no_temporary() {
        let d = scratch("abandoned");
        let f = d.join("m.st");
        std::fs::write(&f, "old").expect("write");
        let out = prepare(&f, &[]).expect("prepared");
        let mut sink = out.create().expect("opened");
        sink.write_all(b"half").expect("write");
        drop(sink);
        assert_eq!(std::fs::read(&f).expect("read"), b"old");
        assert_eq!(std::fs::read_dir(&d).expect("dir").count(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_input_is_refused_by_inode_whatever_the_path() {
        let d = scratch("input");
        let f = d.join("p.dl");
        std::fs::write(&f, "program").expect("write");
        std::os::unix::fs::symlink(&f, d.join("link.dl")).expect("link");
        std::fs::hard_link(&f, d.join("hard.dl")).expect("hard link");
        for alias in ["p.dl", "link.dl", "hard.dl", "./p.dl"] {
            let path = d.join(alias);
            let e = prepare(&path, &[("the program", &f)]).expect_err("refused");
            assert!(e.contains("it is the program"), "{e}");
        }
        assert_eq!(std::fs::read(&f).expect("read"), b"program");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn dev_null_is_written_to_not_replaced() {
        let out = prepare(Path::new("/dev/null"), &[]).expect("prepared");
        out.write(b"bytes").expect("written");
        let m = std::fs::metadata("/dev/null").expect("meta");
        assert!(!m.is_file(), "/dev/null is still a device");
    }

    #[test]
    fn a_missing_folder_or_a_folder_is_refused() {
        let d = scratch("folders");
        assert!(prepare(&d.join("no/such/f.csv"), &[])
            .expect_err("refused")
            .contains("does not exist"));
        assert!(prepare(&d, &[])
            .expect_err("refused")
            .contains("it is a folder"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
