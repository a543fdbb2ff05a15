//! Finding the command in the child's PATH, as execvp does, so that envoke can start it by path.
//!
//! Why: std starts a program named by path with posix_spawn (vfork), but forks (copying envoke's
//! page tables, then a copy-on-write fault for each page either side touches) when it must
//! search a PATH other than envoke's own, which is always the case once the child's environment
//! is built: 69 fewer page faults and about 0.3 ms per launch (docs/benchmarks.md). On any
//! failure a second, ordinary start (execvp's own search) decides, so execvp's behaviour is kept
//! where the two differ: the next PATH entry tried after an ENOENT or EACCES, and the error
//! reported.
//!
//! A script without `#!` (execve's ENOEXEC) is run by /bin/sh, as glibc's execvp and POSIX
//! do. musl's execvp does not (its authors' choice), so envoke does it itself: the static
//! binary starts such a script as the glibc build does.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::LaunchError;

/// How a child is started: by the file found for argv[0] in the child's PATH, the ordinary way
/// (argv[0] searched by execvp), or a script without `#!` handed to /bin/sh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Program<'a> {
    Found(&'a Path),
    Search,
    Shell(&'a Path),
}

/// The shell a script without `#!` is handed to (POSIX execvp; `_PATH_BSHELL`).
pub(super) const SHELL: &str = "/bin/sh";

/// Runs `start` with the file execvp would find for `program` in the child's `path`, and again
/// the ordinary way (execvp) when that fails; then, when execve said ENOEXEC, with the script
/// handed to /bin/sh (see the module doc).
pub(super) fn start_by_path<T>(
    program: &OsStr,
    path: Option<&OsStr>,
    mut start: impl FnMut(Program<'_>) -> Result<std::io::Result<T>, LaunchError>,
) -> Result<std::io::Result<T>, LaunchError> {
    if let Some(found) = executable_in_path(program, path) {
        let started = start(Program::Found(&found))?;
        if started.is_ok() {
            return Ok(started);
        }
    }
    let started = start(Program::Search)?;
    if let Err(error) = &started
        && error.raw_os_error() == Some(libc::ENOEXEC)
        && let Some(script) = located(program, path)
    {
        return start(Program::Shell(&script));
    }
    Ok(started)
}

/// The file `program` names, as execvp finds it: the path itself when it has a slash, else the
/// first regular file of that name in the child's `path`.
pub(super) fn located(program: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        let file = PathBuf::from(program);
        return is_file(&file).then_some(file);
    }
    executable_in_path(program, path)
        .or_else(|| candidates(program, path?).find(|candidate| is_file(candidate)))
}

/// The file execvp would run for a `program` without a slash: the first regular file of that
/// name in the child's `path` that envoke may execute (execvp skips the others and goes on).
/// `None` for a path, when there is no PATH or no such file, or when a candidate before it would
/// end execvp's search (a symlink loop).
fn executable_in_path(program: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    use nix::unistd::{AccessFlags, access};
    if program.is_empty() || program.as_bytes().contains(&b'/') {
        return None;
    }
    for candidate in candidates(program, path?) {
        match candidate.metadata() {
            Ok(meta) if meta.is_file() && access(&candidate, AccessFlags::X_OK).is_ok() => {
                return Some(candidate);
            }
            // What execvp skips: nothing there (ENOENT, ENOTDIR), or nothing it may run there
            // (EACCES: a directory, a FIFO, a file without the execute bit).
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::NotADirectory
                        | std::io::ErrorKind::PermissionDenied
                ) => {}
            // Anything else (a symlink loop, an I/O error) ends execvp's search with that
            // error: execvp itself gives it.
            Err(_) => return None,
        }
    }
    None
}

/// `DIR/program` for each directory of `path`, in order (an empty entry is the working
/// directory, as for execvp).
fn candidates<'a>(program: &'a OsStr, path: &OsStr) -> impl Iterator<Item = PathBuf> + 'a {
    let dirs: Vec<_> = std::env::split_paths(path).collect();
    dirs.into_iter().map(move |dir| dir.join(program))
}

fn is_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A directory of PATH entries: `bin/` holds what each test puts there.
    struct Dirs(tempfile::TempDir);

    impl Dirs {
        fn new() -> Dirs {
            Dirs(tempfile::tempdir().unwrap())
        }

        fn dir(&self, name: &str) -> PathBuf {
            let dir = self.0.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }

        /// `DIR/prog` with `mode`.
        fn file(&self, dir: &str, mode: u32) -> PathBuf {
            let path = self.dir(dir).join("prog");
            std::fs::write(&path, "echo hi\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }

        fn at(&self, name: &str) -> PathBuf {
            self.0.path().join(name)
        }

        /// A PATH of these entries, joined with `:`; a relative entry stays as written.
        fn path(&self, entries: &[&str]) -> OsString {
            let entries: Vec<PathBuf> = entries
                .iter()
                .map(|e| match e.strip_prefix('/') {
                    Some(name) => self.at(name),
                    None => PathBuf::from(e),
                })
                .collect();
            std::env::join_paths(entries).unwrap()
        }
    }

    fn prog() -> &'static OsStr {
        OsStr::new("prog")
    }

    #[test]
    fn candidates_follow_path_in_order_and_an_empty_entry_is_the_working_directory() {
        let found: Vec<PathBuf> = candidates(prog(), OsStr::new(":/a::rel/dir")).collect();
        assert_eq!(
            found,
            ["prog", "/a/prog", "prog", "rel/dir/prog"].map(PathBuf::from)
        );
        // The working directory of a unit test is the package's root.
        assert_eq!(
            located(OsStr::new("Cargo.toml"), Some(OsStr::new(":/nonexistent"))),
            Some(PathBuf::from("Cargo.toml"))
        );
    }

    #[test]
    fn the_first_executable_regular_file_wins_after_what_execvp_skips() {
        let dirs = Dirs::new();
        // A directory named like the command, a file without the execute bit, a missing
        // directory, a file where a directory should be (ENOTDIR), a relative entry that is not
        // there: each skipped, as execvp skips them.
        std::fs::create_dir_all(dirs.dir("named").join("prog")).unwrap();
        dirs.file("plain", 0o644);
        std::fs::write(dirs.at("a-file"), "").unwrap();
        let wanted = dirs.file("bin", 0o755);
        dirs.file("later", 0o755);
        let path = dirs.path(&[
            "no/such/relative/dir",
            "/named",
            "/plain",
            "/missing",
            "/a-file",
            "/bin",
            "/later",
        ]);
        assert_eq!(executable_in_path(prog(), Some(&path)), Some(wanted));
        // `located` (for error messages) also knows of a file it may not execute.
        let plain_only = dirs.path(&["/named", "/plain"]);
        assert_eq!(executable_in_path(prog(), Some(&plain_only)), None);
        assert_eq!(
            located(prog(), Some(&plain_only)),
            Some(dirs.at("plain").join("prog"))
        );
    }

    #[test]
    fn a_symlink_loop_ends_the_search_as_it_ends_execvp() {
        let dirs = Dirs::new();
        std::os::unix::fs::symlink("prog", dirs.dir("loop").join("prog")).unwrap();
        dirs.file("bin", 0o755);
        let path = dirs.path(&["/loop", "/bin"]);
        assert_eq!(executable_in_path(prog(), Some(&path)), None);
    }

    #[test]
    fn no_search_without_a_path_for_a_name_with_a_slash_or_for_an_empty_name() {
        let dirs = Dirs::new();
        let script = dirs.file("bin", 0o755);
        let path = dirs.path(&["/bin"]);
        assert_eq!(executable_in_path(prog(), None), None);
        assert_eq!(executable_in_path(OsStr::new(""), Some(&path)), None);
        // `ROOT/bin/prog` exists, but execvp does not search PATH for a name with a slash.
        let root = dirs.path(&["/"]);
        assert_eq!(
            executable_in_path(OsStr::new("bin/prog"), Some(&root)),
            None
        );
        // A name with a slash is that file, wherever PATH points.
        assert_eq!(located(script.as_os_str(), None), Some(script.clone()));
        assert_eq!(located(OsStr::new("/no/such/prog"), Some(&path)), None);
    }

    /// The programs `start_by_path` tried, each answered by `answer`.
    fn tried(
        program: &OsStr,
        path: Option<&OsStr>,
        answer: impl Fn(&Program<'_>) -> Option<i32>,
    ) -> (Vec<String>, Option<i32>) {
        let mut tried = Vec::new();
        let result = start_by_path(program, path, |program| {
            tried.push(match program {
                Program::Found(path) => format!("found {}", path.display()),
                Program::Search => "search".to_owned(),
                Program::Shell(path) => format!("shell {}", path.display()),
            });
            Ok(match answer(&program) {
                None => Ok(()),
                Some(errno) => Err(std::io::Error::from_raw_os_error(errno)),
            })
        })
        .unwrap();
        (tried, result.err().and_then(|e| e.raw_os_error()))
    }

    #[test]
    fn a_script_without_a_shebang_goes_to_the_shell_only_after_execvp_says_enoexec() {
        let dirs = Dirs::new();
        let script = dirs.file("bin", 0o755);
        let path = dirs.path(&["/bin"]);
        let shown = script.display();

        // Started by the file found: nothing else is tried.
        let (steps, error) = tried(prog(), Some(&path), |_| None);
        assert_eq!(steps, [format!("found {shown}")]);
        assert_eq!(error, None);

        // Not a format the kernel runs: execvp's own try, then /bin/sh with the script.
        let (steps, error) = tried(prog(), Some(&path), |p| {
            (!matches!(p, Program::Shell(_))).then_some(libc::ENOEXEC)
        });
        assert_eq!(
            steps,
            [
                format!("found {shown}"),
                "search".to_owned(),
                format!("shell {shown}")
            ]
        );
        assert_eq!(error, None);

        // Any other failure: execvp's own try decides, and no shell.
        let (steps, error) = tried(prog(), Some(&path), |_| Some(libc::EACCES));
        assert_eq!(steps, [format!("found {shown}"), "search".to_owned()]);
        assert_eq!(error, Some(libc::EACCES));

        // ENOEXEC for a program that is not a file envoke can find: no shell either.
        let (steps, error) = tried(OsStr::new("absent"), Some(&path), |_| Some(libc::ENOEXEC));
        assert_eq!(steps, ["search"]);
        assert_eq!(error, Some(libc::ENOEXEC));
    }
}
