//! Restore step for the data paths: the snapshot engine writes them back under the root,
//! after the accounts exist so that owners are found by name.

use anyhow::Result;

use crate::data::repo::Index;
use crate::data::{Progress, restore};
use crate::restore::Loaded;
use crate::restore::apply::{Apply, Outcome, Status};

pub fn data(a: &Apply, l: &Loaded) -> Result<Outcome> {
    let Some((store, manifest)) = &l.data else {
        return Ok(Outcome::skipped("the snapshot has no data paths"));
    };
    let paths: Vec<&str> = manifest.roots.iter().map(|r| r.path.as_str()).collect();
    if a.dry_run {
        let mut o = a.finish(
            format!(
                "{} files, {} bytes into {}",
                manifest.files,
                manifest.bytes,
                paths.join(", ")
            ),
            vec![],
        );
        o.status = Status::WouldChange;
        return Ok(o);
    }
    let (index, warnings) = Index::load(store)?;
    let r = restore::restore(store, index, a.root, manifest, &Progress::hidden())?;
    let (status, detail) = if !r.failed.is_empty() || r.changed > 0 {
        let status = if r.failed.is_empty() {
            Status::Changed
        } else {
            Status::Failed
        };
        let detail = format!(
            "{} of {} files, {} bytes written ({} entries written or set, {} already as in the snapshot), into {}",
            r.files,
            manifest.files,
            r.bytes,
            r.changed,
            r.unchanged,
            paths.join(", ")
        );
        (status, detail)
    } else {
        let detail = format!(
            "all {} entries already as in the snapshot ({} of {} files), 0 bytes written, into {}",
            r.unchanged,
            r.files,
            manifest.files,
            paths.join(", ")
        );
        (Status::Unchanged, detail)
    };
    Ok(Outcome {
        status,
        detail,
        warnings: warnings
            .into_iter()
            .map(|w| format!("store index {w}"))
            .collect(),
        failed_files: r.failed,
    })
}
