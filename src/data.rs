//! Data snapshots of the configured paths: the only bulk part of a capture. Content is
//! chunked, deduplicated, compressed and packed into the store; trees stream through
//! it; restore writes it back bit for bit under the target root.

pub mod capture;
pub mod codec;
pub mod damaged;
pub mod direct;
pub mod fetch;
pub mod lock;
pub mod node;
pub mod repo;
pub mod restore;
pub mod tree;
pub mod upkeep;
pub mod verify;
pub mod winmeta;

use std::sync::Arc;
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
    files: Arc<AtomicU64>,
    bytes: AtomicU64,
    bar: Option<indicatif::ProgressBar>,
}

/// A worker's handle on the bar: counts a file as done and moves the bar by its size.
#[derive(Clone)]
pub struct FileDone {
    files: Arc<AtomicU64>,
    bar: Option<indicatif::ProgressBar>,
}

impl FileDone {
    /// One more file done (written, already in place, or failed): the bar moves by its
    /// whole size, so it ends at its total.
    pub fn file(&self, size: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(size);
        }
    }

    /// Content written of a file not done yet (a piece of a large one): the bar moves.
    pub fn bytes(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }
}

/// The estimate of the bar's end: the fraction done is the mean of the bytes' and the
/// files' fractions (a small-file phase moves few bytes, a large file few files); none
/// in the first 3 seconds or before 1 % (an estimate from then is noise).
fn eta(elapsed: std::time::Duration, bytes: f64, files: Option<f64>) -> Option<u64> {
    let done = match files {
        Some(f) => (bytes + f) / 2.0,
        None => bytes,
    };
    if elapsed < std::time::Duration::from_secs(3) || done < 0.01 {
        return None;
    }
    Some((elapsed.as_secs_f64() * (1.0 - done.min(1.0)) / done).round() as u64)
}

impl Progress {
    /// A bar when `show` (stderr is a terminal and the output is not JSON), else counters.
    /// It fits 80 columns (a narrower terminal: fewer fields), counts in binary units, shows the files done (of
    /// `total_files` when known: the small-file phase moves few bytes), and gives an ETA
    /// only once the rate means something.
    pub fn new(
        show: bool,
        total_bytes: Option<u64>,
        total_files: Option<u64>,
        what: &str,
    ) -> Progress {
        let files = Arc::new(AtomicU64::new(0));
        let bar = show.then(|| {
            let b = match total_bytes {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            // the full line fits 80 columns; a narrower terminal gets the bar, the bytes
            // and the ETA only
            let narrow = console::Term::stderr()
                .size_checked()
                .is_some_and(|(_, cols)| cols < 80);
            let template = match total_bytes {
                Some(_) if narrow => format!(
                    "{what:<7} [{{bar:8}}] {{binary_bytes:>9}}/{{binary_total_bytes:<9}} {{eta_when_known}}"
                ),
                None if narrow => format!("{what:<7} {{spinner}} {{binary_bytes:>9}} {{files}}"),
                Some(_) => format!(
                    "{what:<7} [{{bar:10}}] {{binary_bytes:>9}}/{{binary_total_bytes:<9}} {{binary_bytes_per_sec:>11}} {{eta_when_known:<9}} {{files}}"
                ),
                None => format!("{what:<7} {{spinner}} {{binary_bytes:>9}} {{binary_bytes_per_sec:>11}} {{files}}"),
            };
            let (count, count_eta) = (files.clone(), files.clone());
            let style = indicatif::ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .with_key(
                    "eta_when_known",
                    move |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let files = total_files.filter(|&t| t > 0).map(|t| {
                            count_eta.load(Ordering::Relaxed) as f64 / t as f64
                        });
                        let bytes = if s.len().unwrap_or(0) == 0 { files.unwrap_or(0.0) } else { s.fraction() as f64 };
                        let _ = match eta(s.elapsed(), bytes, files) {
                            None => write!(w, "ETA --"),
                            Some(secs @ 0..60) => write!(w, "ETA {secs}s"),
                            Some(secs @ 60..3600) => {
                                write!(w, "ETA {}m{:02}s", secs / 60, secs % 60)
                            }
                            Some(secs) => {
                                write!(w, "ETA {}h{:02}m", secs / 3600, secs % 3600 / 60)
                            }
                        };
                    },
                )
                .with_key(
                    "files",
                    move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let n = count.load(Ordering::Relaxed);
                        let _ = match total_files {
                            Some(t) => write!(w, "{n}/{t} files"),
                            None => write!(w, "{n} files"),
                        };
                    },
                )
                .progress_chars("=> ");
            b.set_style(style);
            b.enable_steady_tick(std::time::Duration::from_millis(250));
            b
        });
        Progress {
            files,
            bytes: AtomicU64::new(0),
            bar,
        }
    }

    pub fn hidden() -> Progress {
        Progress::new(false, None, None, "")
    }

    /// One more file walked (capture).
    pub fn file(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// A handle for worker threads to count each file as it is done.
    pub fn done(&self) -> FileDone {
        FileDone {
            files: self.files.clone(),
            bar: self.bar.clone(),
        }
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
            // the last frame shows the end (every file counted) before it is cleared
            b.force_draw();
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_eta_waits_for_a_meaningful_rate_and_counts_files_too() {
        let s = Duration::from_secs;
        // nothing in the first seconds, or before 1 %
        assert_eq!(super::eta(s(2), 0.5, None), None);
        assert_eq!(super::eta(s(30), 0.005, None), None);
        // by bytes alone: half done in 10 s, 10 s to go
        assert_eq!(super::eta(s(10), 0.5, None), Some(10));
        // the small-file phase: few bytes, many files — the files count for half
        assert_eq!(super::eta(s(10), 0.0, Some(0.5)), Some(30));
        assert_eq!(super::eta(s(10), 1.0, Some(1.0)), Some(0));
    }
}
