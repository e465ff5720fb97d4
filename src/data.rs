//! Data snapshots of the configured paths: the only bulk part of a capture. Content is
//! chunked, deduplicated, compressed and packed into the store; trees stream through
//! it; restore writes it back bit for bit under the target root.

pub mod capture;
pub mod codec;
pub mod damaged;
pub mod fetch;
pub mod lock;
pub mod node;
pub mod repo;
pub mod restore;
pub mod tree;
pub mod upkeep;
pub mod verify;
pub mod winmeta;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use node::BlobId;

/// The data part of a snapshot manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DataManifest {
    pub roots: Vec<DataRoot>,
    pub files: u64,
    pub bytes: u64,
    /// Content bytes this capture had to store (not already in the store).
    pub new_bytes: u64,
    /// Bytes this capture added to the store (compressed, packed).
    pub stored_bytes: u64,
}

/// One captured data path and its tree.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DataRoot {
    pub path: String,
    /// The tree blobs, in order (hex in JSON; a manifest with anything else there does
    /// not parse).
    pub tree: Vec<BlobId>,
    pub files: u64,
    pub bytes: u64,
}

/// Counters of a running capture or restore, drawn as a progress bar on a terminal.
pub struct Progress {
    files: AtomicU64,
    bytes: AtomicU64,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// A bar when `show` (stderr is a terminal and the output is not JSON), else counters.
    /// It fits 80 columns, counts in binary units, shows the files done (the small-file
    /// phase moves few bytes), and gives an ETA only once the rate means something.
    pub fn new(show: bool, total_bytes: Option<u64>, what: &str) -> Progress {
        let bar = show.then(|| {
            let b = match total_bytes {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            let template = match total_bytes {
                Some(_) => format!(
                    "{what:<7} [{{bar:12}}] {{binary_bytes:>9}}/{{binary_total_bytes:<9}} {{binary_bytes_per_sec:>11}} {{eta_when_known}} {{msg}}"
                ),
                None => format!("{what:<7} {{spinner}} {{binary_bytes:>9}} {{binary_bytes_per_sec:>11}} {{msg}}"),
            };
            let style = indicatif::ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .with_key(
                    "eta_when_known",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        // an estimate from the first moments (or the first percent) is noise
                        let early = s.elapsed() < std::time::Duration::from_secs(3)
                            || s.fraction() < 0.01;
                        let _ = if early {
                            write!(w, "ETA --")
                        } else {
                            let secs = s.eta().as_secs();
                            match secs {
                                0..60 => write!(w, "ETA {secs}s"),
                                60..3600 => write!(w, "ETA {}m{:02}s", secs / 60, secs % 60),
                                _ => write!(w, "ETA {}h{:02}m", secs / 3600, secs % 3600 / 60),
                            }
                        };
                    },
                )
                .progress_chars("=> ");
            b.set_style(style);
            b.enable_steady_tick(std::time::Duration::from_millis(250));
            b
        });
        Progress {
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            bar,
        }
    }

    pub fn hidden() -> Progress {
        Progress::new(false, None, "")
    }

    pub fn file(&self) {
        let n = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(b) = self.bar.as_ref().filter(|_| n.is_multiple_of(64)) {
            b.set_message(format!("{n} files"));
        }
    }

    pub fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// The bar itself, for worker threads to advance as each file is done.
    pub fn bar(&self) -> Option<indicatif::ProgressBar> {
        self.bar.clone()
    }

    /// Adds bytes to the count without moving the bar (the workers moved it).
    pub fn tally(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes of unchanged files that were not read again.
    pub fn skipped(&self, n: u64) {
        self.bytes(n);
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
