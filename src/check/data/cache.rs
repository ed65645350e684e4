//! Data sources described before, kept while their files are unchanged
//! (the language server checks a document on every edit).

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::syntax::ast::DataDecl;

use super::spec::DataSpec;

/// Data sources described before, by the declaration's text and place and
/// the folder and override they were read with; an entry stands while the
/// files it read keep their size and modification time. Only a source
/// that described without an error is kept.
#[derive(Debug, Default)]
pub struct DataCache(std::sync::Mutex<std::collections::HashMap<CacheKey, Cached>>);

type CacheKey = (String, usize, PathBuf, Option<PathBuf>);

#[derive(Debug)]
struct Cached {
    spec: DataSpec,
    diags: Vec<Diagnostic>,
    stamps: Vec<(PathBuf, Option<(std::time::SystemTime, u64)>)>,
}

/// A file's modification time and size, if it can be read.
fn stamp(p: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl DataCache {
    /// `describe()`'s answer for `d` read in folder `base` with `--data`
    /// `override_path`, from the cache while its files are unchanged.
    pub fn describe(
        &self,
        d: &DataDecl,
        (base, override_path): (&Path, Option<&Path>),
        describe: impl FnOnce() -> (Option<DataSpec>, Vec<Diagnostic>),
    ) -> (Option<DataSpec>, Vec<Diagnostic>) {
        let key: CacheKey = (
            format!("{:?}", (&d.name.node, &d.source)),
            d.span.start,
            base.to_path_buf(),
            override_path.map(Path::to_path_buf),
        );
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&key) {
            if c.stamps.iter().all(|(p, s)| stamp(p) == *s) {
                return (Some(c.spec.clone()), c.diags.clone());
            }
        }
        let (spec, diags) = describe();
        match &spec {
            Some(s) if diags.is_empty() => {
                let stamps = s.source.files().into_iter().map(|p| {
                    let st = stamp(&p);
                    (p, st)
                });
                let cached = Cached {
                    spec: s.clone(),
                    diags: diags.clone(),
                    stamps: stamps.collect(),
                };
                map.insert(key, cached);
            }
            _ => {
                map.remove(&key);
            }
        }
        (spec, diags)
    }
}
