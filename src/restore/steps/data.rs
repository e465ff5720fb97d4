//! Restore step for the data paths: the snapshot engine writes them back under the root,
//! after the accounts exist so that owners are found by name.

use std::sync::{Arc, Mutex};

use anyhow::Result;

use crate::data::repo::Index;
use crate::data::{Progress, restore, verify};
use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome, Status};

pub fn data(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let Some((store, manifest)) = &l.data else {
        return Ok(Outcome::skipped("the snapshot has no data paths"));
    };
    let paths: Vec<&str> = manifest.roots.iter().map(|r| r.path.as_str()).collect();
    if a.dry_run {
        // Say up front what cannot come back: the blobs the files need, read and hashed.
        let (index, warnings) = Index::load(store)?;
        let damaged = verify::damaged_files(store, &Arc::new(Mutex::new(index)), manifest);
        let mut detail = format!(
            "{} files, {} bytes into {}",
            manifest.files,
            manifest.bytes,
            paths.join(", ")
        );
        if !damaged.is_empty() {
            detail.push_str(&format!(
                "; {} damaged in the store, would not be restored",
                damaged.len()
            ));
        }
        let mut o = a.finish(detail, index_warnings(warnings));
        o.status = Status::WouldChange;
        o.failed_files = damaged;
        return Ok(o);
    }
    let (index, warnings) = Index::load(store)?;
    let r = restore::restore(store, index, a.root, manifest, &Progress::hidden())?;
    let detail = format!(
        "{} of {} files, {} bytes written, into {}",
        r.files,
        manifest.files,
        r.bytes,
        paths.join(", ")
    );
    let status = if r.failed.is_empty() {
        Status::Changed
    } else {
        Status::Failed
    };
    Ok(Outcome {
        status,
        detail,
        warnings: index_warnings(warnings),
        failed_files: r.failed,
    })
}

fn index_warnings(warnings: Vec<String>) -> Vec<String> {
    warnings
        .into_iter()
        .map(|w| format!("store index {w}"))
        .collect()
}
