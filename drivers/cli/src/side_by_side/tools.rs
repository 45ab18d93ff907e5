//! The reference tools: nginx, h2load and curl, found on `PATH` (then in the `sbin`
//! directories, where Debian puts nginx, since they are often not on a user's `PATH`), with
//! their versions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::run_tool;

/// Directories searched after `PATH`.
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Time a `--version` call may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A tool: its name and the Debian package that provides it.
struct Wanted {
    name: &'static str,
    package: &'static str,
}

const WANTED: [Wanted; 3] = [
    Wanted {
        name: "nginx",
        package: "nginx-light (or nginx)",
    },
    Wanted {
        name: "h2load",
        package: "nghttp2-client",
    },
    Wanted {
        name: "curl",
        package: "curl",
    },
];

/// The tools found and their versions.
#[derive(Clone, Debug)]
pub(super) struct Tools {
    pub(super) nginx: PathBuf,
    pub(super) h2load: PathBuf,
    pub(super) curl: PathBuf,
    /// `nginx -v`, e.g. `nginx/1.22.1`.
    pub(super) nginx_version: String,
    /// nginx's version as numbers (0.0.0 if it could not be read).
    pub(super) nginx_release: (u32, u32, u32),
    /// `h2load --version`, e.g. `h2load nghttp2/1.52.0`.
    pub(super) h2load_version: String,
    /// The first line of `curl --version`.
    pub(super) curl_version: String,
}

impl Tools {
    /// Finds the three tools and reads their versions; a missing tool is an error naming it
    /// and the Debian package that provides it.
    pub(super) async fn find() -> Result<Tools, String> {
        let (nginx, h2load, curl) = locate(&search_dirs())?;
        // `nginx -v` prints to stderr.
        let nginx_out = run_tool("nginx -v", &nginx, &["-v".into()], VERSION_TIMEOUT).await?;
        let nginx_text = String::from_utf8_lossy(&nginx_out.stderr).into_owned()
            + &String::from_utf8_lossy(&nginx_out.stdout);
        let nginx_version = nginx_text
            .split_whitespace()
            .find(|w| w.starts_with("nginx/"))
            .unwrap_or("nginx/unknown")
            .to_owned();
        let h2load_out = run_tool(
            "h2load --version",
            &h2load,
            &["--version".into()],
            VERSION_TIMEOUT,
        )
        .await?;
        let curl_out = run_tool(
            "curl --version",
            &curl,
            &["--version".into()],
            VERSION_TIMEOUT,
        )
        .await?;
        Ok(Tools {
            nginx_release: parse_release(nginx_version.trim_start_matches("nginx/")),
            nginx_version,
            h2load_version: first_line(&h2load_out.stdout),
            curl_version: first_line(&curl_out.stdout),
            nginx,
            h2load,
            curl,
        })
    }
}

/// The directories searched, in order: `PATH`, then [`EXTRA_DIRS`].
fn search_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .collect()
}

/// nginx, h2load and curl in `dirs`; an error naming every missing tool and its package.
fn locate(dirs: &[PathBuf]) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let found: Vec<(&Wanted, Option<PathBuf>)> = WANTED
        .iter()
        .map(|w| (w, find_program(w.name, dirs)))
        .collect();
    let path_of = |name: &str| {
        found
            .iter()
            .find(|(w, _)| w.name == name)
            .and_then(|(_, p)| p.clone())
    };
    match (path_of("nginx"), path_of("h2load"), path_of("curl")) {
        (Some(nginx), Some(h2load), Some(curl)) => Ok((nginx, h2load, curl)),
        _ => {
            let missing: Vec<String> = found
                .iter()
                .filter(|(_, p)| p.is_none())
                .map(|(w, _)| format!("{} (Debian package {})", w.name, w.package))
                .collect();
            Err(format!(
                "side-by-side needs nginx, h2load and curl; not found on PATH or in {}: {}. \
                 Install them (as root: apt-get install -y nginx-light nghttp2-client curl), \
                 or run drivers/cli/benches/side-by-side.sh, which does",
                EXTRA_DIRS.join(", "),
                missing.join(", ")
            ))
        }
    }
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or("unknown")
        .trim()
        .to_owned()
}

/// `1.22.1` -> (1, 22, 1); missing or unreadable parts are 0.
pub(super) fn parse_release(text: &str) -> (u32, u32, u32) {
    let mut parts = text
        .split('.')
        .map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// `name` in the first of `dirs` holding a regular, executable file of that name.
fn find_program(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse_and_compare() {
        assert_eq!(parse_release("1.22.1"), (1, 22, 1));
        assert_eq!(parse_release("1.25"), (1, 25, 0));
        assert_eq!(parse_release("x"), (0, 0, 0));
        assert!(parse_release("1.26.0") >= (1, 25, 1));
    }

    #[test]
    fn programs_are_found_only_when_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = orca_cluster_test_support::TempDir::new("sbs-tools").unwrap();
        let dirs = vec![dir.path().to_owned()];
        std::fs::write(dir.join("curl"), b"").unwrap();
        assert!(find_program("curl", &dirs).is_none(), "not executable");
        std::fs::set_permissions(dir.join("curl"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_program("curl", &dirs), Some(dir.join("curl")));
        std::fs::create_dir(dir.join("nginx")).unwrap();
        assert!(find_program("nginx", &dirs).is_none(), "a directory");
    }

    #[test]
    fn missing_tools_are_named_with_their_packages() {
        use std::os::unix::fs::PermissionsExt;
        let dir = orca_cluster_test_support::TempDir::new("sbs-tools").unwrap();
        std::fs::write(dir.join("curl"), b"").unwrap();
        std::fs::set_permissions(dir.join("curl"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = locate(&[dir.path().to_owned()]).unwrap_err();
        assert!(
            err.contains("nginx (Debian package nginx-light (or nginx))"),
            "{err}"
        );
        assert!(
            err.contains("h2load (Debian package nghttp2-client)"),
            "{err}"
        );
        assert!(!err.contains("curl (Debian"), "{err}");
    }
}
