//! Files only the server's user may read: the data directory (0700) and
//! what it holds (0600), mail in the outbox (it carries live reset links),
//! backups. Modes are set explicitly, whatever the process's umask.

use std::io;
use std::path::Path;

/// Files: owner read and write.
pub const FILE_MODE: u32 = 0o600;
/// Directories: owner only.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) if needed, and makes it owner-only.
pub fn dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Makes what `dir` holds owner-only: files 0600, directories 0700, one level
/// down (sled keeps `blobs/` there).
pub fn contents(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(DIR_MODE))?;
                contents(&entry.path())?;
            } else if kind.is_file() {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(FILE_MODE))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Opens `path` for writing as a new owner-only file (truncating one that exists).
pub fn create(path: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(FILE_MODE);
        let file = options.open(path)?;
        // `mode` applies only to a file created now; an existing one keeps its own.
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// Makes one file owner-only.
pub fn file(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}
