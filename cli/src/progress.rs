//! Progress on stderr as bars (only when it is a terminal), and on stdout as JSON status
//! lines (`backup --json`, as restic's), fed by the library's counters.

use std::{
    io::IsTerminal,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};
use zerok_vault::Progress;

/// A bar that follows a [`Progress`] until dropped.
pub struct Bar {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: ProgressBar,
}

/// What the bar shows.
#[derive(Clone, Copy)]
pub enum Show {
    /// Files and bytes read, bytes stored.
    Backup,
    /// Bytes written out of the total.
    Restore,
    /// Bytes verified.
    Check,
}

impl Bar {
    /// Starts a bar for `progress`; a hidden no-op when stderr is not a terminal.
    pub fn start(progress: &Arc<Progress>, show: Show) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { task: None, bar: ProgressBar::hidden() };
        }
        let bar = ProgressBar::new_spinner();
        let style = match show {
            Show::Restore => {
                "{spinner} {elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}"
            }
            Show::Backup => {
                "{spinner} {elapsed_precise} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}"
            }
            Show::Check => "{spinner} {elapsed_precise} {bytes} {binary_bytes_per_sec} {msg}",
        };
        bar.set_style(ProgressStyle::with_template(style).unwrap_or_else(|_| ProgressStyle::default_spinner()));
        let (p, b) = (progress.clone(), bar.clone());
        let task = tokio::spawn(async move {
            loop {
                let files = Progress::get(&p.files);
                match show {
                    Show::Backup => {
                        // Percent and ETA against the count so far, which the scan completes.
                        b.set_length(Progress::get(&p.bytes_total).max(Progress::get(&p.bytes_done)));
                        b.set_position(Progress::get(&p.bytes_done));
                        let counting = if p.scanned.load(Relaxed) { "" } else { " (counting…)" };
                        b.set_message(format!(
                            "{files}/{} files, {} stored{counting}",
                            Progress::get(&p.files_total),
                            indicatif::HumanBytes(Progress::get(&p.bytes_added))
                        ));
                    }
                    Show::Restore => {
                        b.set_position(Progress::get(&p.bytes));
                        b.set_length(Progress::get(&p.bytes_total));
                        b.set_message(format!("{files} files"));
                    }
                    Show::Check => {
                        b.set_position(Progress::get(&p.bytes));
                        b.set_message("verifying");
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { task: Some(task), bar }
    }
}

/// One status line: restic's `status` message, with zerok's counters.
pub fn status(p: &Progress, elapsed: Duration) -> serde_json::Value {
    let (done, total, scanned) = (Progress::get(&p.bytes_done), Progress::get(&p.bytes_total), p.scanned.load(Relaxed));
    let fraction = if total == 0 { 0.0 } else { (done as f64 / total as f64).min(1.0) };
    let secs = elapsed.as_secs_f64();
    let mut line = serde_json::json!({
        "message_type": "status",
        "seconds_elapsed": secs.round() as u64,
        "percent_done": fraction,
        "total_files": Progress::get(&p.files_total),
        "files_done": Progress::get(&p.files),
        "total_bytes": total,
        "bytes_done": done,
        "bytes_added": Progress::get(&p.bytes_added),
        "scanning": !scanned,
    });
    if scanned && done > 0 {
        line["seconds_remaining"] =
            serde_json::json!((secs * (total.saturating_sub(done)) as f64 / done as f64).round() as u64);
    }
    line
}

/// Status lines on stdout every interval (1 s; `ZEROK_PROGRESS_FPS` lines a second, at
/// most 60) until dropped; the first after one interval, so a run shorter than that prints
/// only its summary.
pub struct JsonStatus {
    task: tokio::task::JoinHandle<()>,
}

impl JsonStatus {
    /// Starts printing `progress`'s status.
    pub fn start(progress: &Arc<Progress>) -> Self {
        let fps = std::env::var("ZEROK_PROGRESS_FPS").ok().and_then(|f| f.parse::<f64>().ok()).filter(|f| *f > 0.0);
        // At least one line a hundred seconds (a tiny rate would overflow the interval).
        let every = Duration::from_secs_f64(1.0 / fps.unwrap_or(1.0).clamp(0.01, 60.0));
        let (p, started) = (progress.clone(), Instant::now());
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                println!("{}", status(&p, started.elapsed()));
            }
        });
        Self { task }
    }
}

impl Drop for JsonStatus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.bar.finish_and_clear();
    }
}
