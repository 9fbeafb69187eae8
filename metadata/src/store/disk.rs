//! Free space under the metadata store, checked before sled opens it.
//!
//! sled can leave its files unreadable when it runs out of space *while
//! opening* (it rewrites its snapshot and log tail then): the reliability
//! campaign saw a node that was started on a full disk never start again
//! ("Read corrupted data"). So the store refuses to open with less than
//! [`MIN_FREE_TO_OPEN`] free, before sled touches a file, and says what to
//! do. (A running store that hits a full disk stops the node instead; see
//! `MetadataStore::failed`.)

use std::path::Path;

use crate::MetadataError;

/// The least free space the metadata store opens with.
pub const MIN_FREE_TO_OPEN: u64 = 32 * 1024 * 1024;

/// (total, usable) bytes of the file system holding `dir`, as Java's
/// `File.getTotalSpace` / `getUsableSpace` report them (usable = available
/// to unprivileged users).
pub fn disk_space(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid NUL-terminated string and `st` points to
    // writable memory of the right size; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    // The statvfs field types differ between platforms (u32 or u64).
    #[allow(clippy::unnecessary_cast)]
    let (frsize, blocks, avail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    Ok((blocks.saturating_mul(frsize), avail.saturating_mul(frsize)))
}

/// Refuse to open the store in `dir` when `usable` bytes are free there
/// (fewer than [`MIN_FREE_TO_OPEN`]).
pub fn check_room_to_open(dir: &Path, usable: u64) -> Result<(), MetadataError> {
    if usable >= MIN_FREE_TO_OPEN {
        return Ok(());
    }
    Err(MetadataError::Storage(format!(
        "only {} KiB free on the disk holding {}; the metadata store needs {} MiB free to open \
         safely (its database can be damaged by running out of space while it opens): free disk \
         space, then start the node again",
        usable / 1024,
        dir.display(),
        MIN_FREE_TO_OPEN >> 20
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nearly_full_disk_is_refused_with_advice() {
        let dir = Path::new("/data/meta");
        let e = check_room_to_open(dir, MIN_FREE_TO_OPEN - 1).expect_err("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("/data/meta") && msg.contains("free disk space"),
            "{msg}"
        );
        check_room_to_open(dir, MIN_FREE_TO_OPEN).expect("enough room");
    }

    #[test]
    fn the_space_of_a_real_directory_is_known() {
        let (total, usable) = disk_space(Path::new(".")).expect("statvfs");
        assert!(total > 0 && usable <= total);
    }
}
