//! Progress bars on stderr (only when it is a terminal), fed by the library's counters.

use std::{io::IsTerminal, sync::Arc, time::Duration};

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
            _ => "{spinner} {elapsed_precise} {bytes} {binary_bytes_per_sec} {msg}",
        };
        bar.set_style(ProgressStyle::with_template(style).unwrap_or_else(|_| ProgressStyle::default_spinner()));
        let (p, b) = (progress.clone(), bar.clone());
        let task = tokio::spawn(async move {
            loop {
                b.set_position(Progress::get(&p.bytes));
                let files = Progress::get(&p.files);
                match show {
                    Show::Backup => b.set_message(format!(
                        "{files} files, {} stored",
                        indicatif::HumanBytes(Progress::get(&p.bytes_added))
                    )),
                    Show::Restore => {
                        b.set_length(Progress::get(&p.bytes_total));
                        b.set_message(format!("{files} files"));
                    }
                    Show::Check => b.set_message("verifying"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { task: Some(task), bar }
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
