//! The quick count a progress bar needs: the files and bytes below the paths, walked in
//! parallel beside the backup with the same exclusions, so a bar can show a percentage and
//! an ETA (as restic's does). It only counts; what is stored is the walk's business.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
};

use super::exclude::Filter;
use crate::Progress;

/// Threads the count walks with (it waits on the disk, not the CPU).
const SCAN_THREADS: usize = 2;

/// A count running on threads of its own until it ends or is dropped.
pub(super) struct Scan {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scan {
    /// Starts counting into `progress.files_total` and `progress.bytes_total`; sets
    /// `progress.scanned` when the count is complete.
    pub fn start(paths: &[PathBuf], filter: Arc<Filter>, progress: Arc<Progress>) -> Scan {
        let stop = Arc::new(AtomicBool::new(false));
        let Some((first, rest)) = paths.split_first() else { return Scan { stop, thread: None } };
        let mut walk = ignore::WalkBuilder::new(first);
        for path in rest {
            walk.add(path);
        }
        walk.standard_filters(false)
            .follow_links(false)
            .same_file_system(filter.one_file_system)
            .threads(SCAN_THREADS)
            .filter_entry(move |e| {
                // The paths given are never left out.
                e.depth() == 0 || !filter.excludes(e.path(), e.file_type().is_some_and(|t| t.is_dir()))
            });
        let walk = walk.build_parallel();
        let quit = stop.clone();
        let thread = std::thread::Builder::new().name("zerok-scan".into()).spawn(move || {
            walk.run(|| {
                let (progress, quit) = (progress.clone(), quit.clone());
                Box::new(move |entry| {
                    if quit.load(Relaxed) {
                        return ignore::WalkState::Quit;
                    }
                    if let Ok(e) = entry
                        && e.file_type().is_some_and(|t| t.is_file())
                        && let Ok(meta) = e.metadata()
                    {
                        Progress::add(&progress.files_total, 1);
                        Progress::add(&progress.bytes_total, meta.len());
                    }
                    ignore::WalkState::Continue
                })
            });
            if !quit.load(Relaxed) {
                progress.scanned.store(true, Relaxed);
            }
        });
        // No thread, no count: the bar shows what it can without totals.
        Scan { stop, thread: thread.ok() }
    }
}

impl Drop for Scan {
    /// Stops the count (the backup is done, or failed) and waits for its threads.
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
