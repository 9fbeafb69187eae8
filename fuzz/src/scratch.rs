//! Scratch directories for the harnesses that need a disk: under `$DISTLOG_FUZZ_TMP` if set,
//! else `/dev/shm` (tmpfs: fsyncs cost nothing) when it exists, else the system temp dir. Each
//! is removed when the process exits normally (libFuzzer's `-runs`/`-max_total_time` end);
//! a crashing run leaves it behind, which is why `scripts/fuzz.sh` points
//! `DISTLOG_FUZZ_TMP` at a directory it removes itself.

use std::path::PathBuf;
use std::sync::Mutex;

static CREATED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_all() {
    if let Ok(dirs) = CREATED.lock() {
        for d in dirs.iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A fresh, empty directory named after `name`, this process and a counter; removed at exit.
pub fn dir(name: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let parent = match std::env::var_os("DISTLOG_FUZZ_TMP") {
        Some(p) => PathBuf::from(p),
        None if std::path::Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = parent.join(format!("distlog-fuzz-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the scratch directory");
    let mut created = CREATED.lock().expect("scratch list");
    if created.is_empty() {
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe {
            libc::atexit(remove_all);
        }
    }
    created.push(d.clone());
    d
}

/// Remove a directory made by [`dir`] now (a harness resetting its state).
pub fn remove(d: &std::path::Path) {
    let _ = std::fs::remove_dir_all(d);
    if let Ok(mut created) = CREATED.lock() {
        created.retain(|x| x != d);
    }
}
