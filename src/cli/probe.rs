//! `carryover probe PATH…`: what is on each block device or image file, like `blkid -p`.

use std::path::PathBuf;

use anyhow::Result;

use super::Ctx;
use super::output::emit;
use crate::disks::probe;
use crate::error::Exit;

pub fn run(ctx: &Ctx, paths: &[PathBuf]) -> Result<Exit> {
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for p in paths {
        match probe::probe_path(p) {
            Ok(s) => found.push(s),
            Err(e) => failed.push(crate::error::Problem::new(p.display().to_string(), e)),
        }
    }
    // nothing probed: one error (JSON's error object); some: the others are named on
    // stderr and the exit code says so
    if found.is_empty() && !failed.is_empty() {
        let all: Vec<String> = failed
            .iter()
            .map(|f| format!("{}: {}", f.path, f.error))
            .collect();
        anyhow::bail!("{}", all.join("; "));
    }
    for f in &failed {
        eprintln!("carryover: {}: {}", f.path, f.error);
    }
    let failed = !failed.is_empty();
    emit(ctx.format, &found, || {
        let mut o = String::new();
        for s in &found {
            let field = |k: &str, v: &Option<String>| {
                v.as_ref()
                    .map(|v| format!(" {k}=\"{v}\""))
                    .unwrap_or_default()
            };
            o.push_str(&format!(
                "{}:{}{}{}{}{}\n",
                s.path,
                field("LABEL", &s.label),
                field("UUID", &s.uuid),
                field("VERSION", &s.version),
                field("TYPE", &s.kind),
                field("USAGE", &s.usage)
            ));
            for part in &s.partitions {
                o.push_str(&format!(
                    "  partition {}: start {} size {} type {}{}{}\n",
                    part.number,
                    part.start,
                    part.size,
                    part.part_type,
                    part.uuid
                        .as_ref()
                        .map(|u| format!(" PARTUUID=\"{u}\""))
                        .unwrap_or_default(),
                    part.name
                        .as_ref()
                        .map(|n| format!(" PARTLABEL=\"{n}\""))
                        .unwrap_or_default(),
                ));
            }
        }
        o
    })?;
    Ok(if failed { Exit::Failure } else { Exit::Success })
}
