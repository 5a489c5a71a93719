//! Reading an operator's files with a bound: components here, and through
//! this module the daemon's other files (policy files, traces, tokens). A
//! path may name anything, and the host must not wait on it or fill its
//! memory with it: `/dev/zero` never ends, a named pipe blocks until
//! something writes to it, a log file given by mistake can be gigabytes.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::Path;

/// The bytes of the regular file at `path`, if it has at most `limit`.
/// Anything else is an error that says what it found: not a regular file
/// ([`io::ErrorKind::InvalidInput`], checked before it is opened, so a
/// pipe is not waited on), or larger than `limit`
/// ([`io::ErrorKind::FileTooLarge`], read no further than one byte past
/// it).
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device or a pipe)"
        };
        return Err(io::Error::new(io::ErrorKind::InvalidInput, what));
    }
    let mut bytes = Vec::new();
    File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {}", size(limit)),
        ));
    }
    Ok(bytes)
}

/// [`read`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}")))
}

/// `limit` for a person: `256 MiB`, `64 KiB`, `100 bytes`.
pub fn size(limit: u64) -> String {
    match limit {
        l if l >= 1 << 20 && l.is_multiple_of(1 << 20) => format!("{} MiB", l >> 20),
        l if l >= 1 << 10 && l.is_multiple_of(1 << 10) => format!("{} KiB", l >> 10),
        l => format!("{l} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_within_the_limit_is_read_and_anything_else_is_refused_saying_what_it_is() {
        let dir = std::env::temp_dir().join(format!("vedfolnir-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("policy.toml");
        std::fs::write(&file, "service = \"web\"\n").unwrap();
        assert_eq!(read_text(&file, 16).unwrap(), "service = \"web\"\n");
        let e = read(&file, 15).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than 15 bytes");
        let e = read(&dir, 1 << 20).unwrap_err();
        assert_eq!(e.to_string(), "a directory");
        // Never ends: refused before a byte is read.
        let e = read(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        let e = read_text(&file, 16).unwrap_err();
        assert!(e.to_string().starts_with("not UTF-8 text"), "{e}");
        assert_eq!(
            read(&dir.join("missing"), 1).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(size(256 << 20), "256 MiB");
        assert_eq!(size(64 << 10), "64 KiB");
    }
}
