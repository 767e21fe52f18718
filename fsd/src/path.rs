//! Paths a capability holder gives, confined to the directory its
//! capability names.

use alloc::string::String;

use crate::volume::Error;

/// Longest path inside a volume littlefs takes.
pub const MAX_PATH_BYTES: usize = 255;

/// The volume path `path` names inside `directory` (itself a volume path,
/// "" for the root). `path` is relative: an absolute path, a `..`
/// component or a NUL byte is refused (littlefs has no links, so nothing
/// else can lead out); `.` and empty components name the directory they
/// are in. The result has no leading, trailing or doubled `/`.
pub fn resolve(directory: &str, path: &str) -> Result<String, Error> {
    if path.starts_with('/') {
        return Err(Error::Escapes("an absolute path"));
    }
    if path.contains('\0') {
        return Err(Error::Invalid("a NUL byte in a path"));
    }
    let mut resolved = String::from(directory);
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(Error::Escapes("`..`")),
            name => {
                if !resolved.is_empty() {
                    resolved.push('/');
                }
                resolved.push_str(name);
            }
        }
    }
    if resolved.len() > MAX_PATH_BYTES {
        return Err(Error::NameTooLong);
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_inside_the_directory() {
        assert_eq!(resolve("", "a/b").unwrap(), "a/b");
        assert_eq!(resolve("data", "./x//y/.").unwrap(), "data/x/y");
        assert_eq!(resolve("data", ".").unwrap(), "data");
        assert_eq!(resolve("", "").unwrap(), "");
    }

    #[test]
    fn escapes_are_refused() {
        assert_eq!(
            resolve("d", "/etc"),
            Err(Error::Escapes("an absolute path"))
        );
        assert_eq!(resolve("d", ".."), Err(Error::Escapes("`..`")));
        assert_eq!(resolve("d", "a/../../b"), Err(Error::Escapes("`..`")));
        assert!(matches!(resolve("", "a\0b"), Err(Error::Invalid(_))));
        let long = "x".repeat(MAX_PATH_BYTES + 1);
        assert_eq!(resolve("", &long), Err(Error::NameTooLong));
    }
}
