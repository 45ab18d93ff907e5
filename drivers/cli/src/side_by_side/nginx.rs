//! The reference server: an nginx configuration that serves the benchmark's chunk files at
//! `/internal/fill` on three loopback ports (HTTP/1.1, h2c, and TLS with client certificates
//! offering h2 and http/1.1), and its start.
//!
//! nginx knows nothing of the fill query: a `map` turns the query's `bucket` and `key` into a
//! file under the data root, and every other request gets 404. The file holds exactly the
//! chunk's bytes, so nginx answers 200 with a `Content-Length` equal to the chunk length, which
//! is all the fill client checks (it ignores `Content-Type`; nginx ignores `x-orca-internal`).
//!
//! Settings: `worker_processes 1` (every row uses one connection, which one worker serves
//! whatever the count, and one worker leaves the other core to the client), `sendfile on` and
//! `tcp_nopush on` (Debian's defaults), no access log (our listeners log no request either),
//! every other setting at nginx's default (HTTP/2 frame and window sizes included). Every path
//! nginx writes (pid, lock, error log, temp directories) is inside the benchmark's directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use super::process::{Server, run_tool};
use super::tools::Tools;

/// Time nginx has to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The loopback ports nginx listens on.
#[derive(Clone, Copy, Debug)]
pub(super) struct NginxPorts {
    /// Plain HTTP/1.1.
    pub(super) http1: u16,
    /// h2c with prior knowledge.
    pub(super) h2c: u16,
    /// TLS requiring a client certificate; ALPN h2 or http/1.1.
    pub(super) tls: u16,
}

/// The server's TLS files and the CA that client certificates must chain to.
#[derive(Clone, Debug)]
pub(super) struct ServerTls {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    pub(super) ca: PathBuf,
}

/// Everything the configuration names.
pub(super) struct NginxSetup<'a> {
    /// Directory for nginx's pid, lock, error log and temp files.
    pub(super) dir: &'a Path,
    /// Root of the chunk files.
    pub(super) data_root: &'a Path,
    /// `(bucket, key)` of every chunk file, at `<data_root>/<bucket>/<key>`.
    pub(super) files: &'a [(String, String)],
    pub(super) ports: NginxPorts,
    pub(super) tls: &'a ServerTls,
    /// nginx's version: 1.25.1 and later enable HTTP/2 with `http2 on`, earlier ones with
    /// the `listen ... http2` parameter.
    pub(super) release: (u32, u32, u32),
}

/// A path as a quoted nginx string; paths nginx would read differently (quotes, backslashes,
/// `$` variables, control characters) are refused, naming the path.
fn quoted(path: &Path) -> Result<String, String> {
    let text = path.to_str().ok_or_else(|| {
        format!(
            "{}: not UTF-8, cannot be named in an nginx config",
            path.display()
        )
    })?;
    if text
        .chars()
        .any(|c| c == '"' || c == '\\' || c == '$' || c.is_control())
    {
        return Err(format!(
            "{text}: contains a quote, backslash, $ or control character; cannot be named in an nginx config"
        ));
    }
    Ok(format!("\"{text}\""))
}

/// A map key or value: bucket and key names are the benchmark's own (`b`, `chunk-<n>.bin`),
/// refused if they hold anything but `A-Z a-z 0-9 - _ . /`.
fn plain(text: &str) -> Result<&str, String> {
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    {
        return Err(format!("{text:?}: not a plain name for the nginx config"));
    }
    Ok(text)
}

/// The configuration file's text.
pub(super) fn config(s: &NginxSetup<'_>) -> Result<String, String> {
    let dir = |name: &str| quoted(&s.dir.join(name));
    let new_http2 = s.release >= (1, 25, 1);
    let (h2_listen, h2_on) = if new_http2 {
        ("", "        http2 on;\n")
    } else {
        (" http2", "")
    };
    let mut map = String::new();
    for (bucket, key) in s.files {
        let name = format!("{}/{}", plain(bucket)?, plain(key)?);
        let _ = writeln!(map, "        \"{name}\" \"/{name}\";");
    }
    let location = format!(
        "        root {root};\n        location = /internal/fill {{\n            try_files $orca_fill_file =404;\n        }}\n        location / {{\n            return 404;\n        }}\n",
        root = quoted(s.data_root)?
    );
    let p = s.ports;
    Ok(format!(
        "# Written by orca-cluster bench side-by-side.
daemon off;
master_process on;
worker_processes 1;
pid {pid};
lock_file {lock};
error_log {error_log} warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};

    map \"$arg_bucket/$arg_key\" $orca_fill_file {{
        default \"/no-such-chunk\";
{map}    }}

    server {{
        listen 127.0.0.1:{http1};
{location}    }}

    server {{
        listen 127.0.0.1:{h2c}{h2_listen};
{h2_on}{location}    }}

    server {{
        listen 127.0.0.1:{tls} ssl{h2_listen};
{h2_on}        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
{location}    }}
}}
",
        pid = dir("nginx.pid")?,
        lock = dir("nginx.lock")?,
        error_log = dir("nginx-error.log")?,
        body = dir("nginx-temp/body")?,
        proxy = dir("nginx-temp/proxy")?,
        fastcgi = dir("nginx-temp/fastcgi")?,
        uwsgi = dir("nginx-temp/uwsgi")?,
        scgi = dir("nginx-temp/scgi")?,
        http1 = p.http1,
        h2c = p.h2c,
        tls = p.tls,
        cert = quoted(&s.tls.cert)?,
        key = quoted(&s.tls.key)?,
        ca = quoted(&s.tls.ca)?,
    ))
}

/// Writes the configuration into `setup.dir`, has nginx check it (`nginx -t`), starts nginx in
/// the foreground and waits until its three ports accept connections.
pub(super) async fn start(tools: &Tools, setup: &NginxSetup<'_>) -> Result<Server, String> {
    let text = config(setup)?;
    let conf = setup.dir.join("nginx.conf");
    std::fs::write(&conf, text).map_err(|e| format!("writing {}: {e}", conf.display()))?;
    let temp = setup.dir.join("nginx-temp");
    std::fs::create_dir_all(&temp).map_err(|e| format!("creating {}: {e}", temp.display()))?;
    let args = |test: bool| {
        let mut a: Vec<String> = Vec::new();
        if test {
            a.push("-t".into());
            a.push("-q".into());
        }
        a.extend([
            "-p".into(),
            setup.dir.display().to_string(),
            "-c".into(),
            conf.display().to_string(),
        ]);
        // Before 1.19.5 there is no -e: the compiled-in error log is used until the
        // configuration is read.
        if tools.nginx_release >= (1, 19, 5) {
            a.extend([
                "-e".into(),
                setup.dir.join("nginx-error.log").display().to_string(),
            ]);
        }
        a
    };
    run_tool(
        "nginx -t (the generated configuration)",
        &tools.nginx,
        &args(true),
        START_TIMEOUT,
    )
    .await?;
    let mut command = Command::new(&tools.nginx);
    command.args(args(false));
    let mut server = Server::spawn("nginx", command, setup.dir.join("nginx-stdout.log"))?;
    let p = setup.ports;
    server
        .wait_ready(&[p.http1, p.h2c, p.tls], START_TIMEOUT)
        .await
        .map_err(|e| {
            let log = std::fs::read(setup.dir.join("nginx-error.log")).unwrap_or_default();
            format!(
                "{e}\nnginx's error log ends with:\n{}",
                super::process::tail(&log)
            )
        })?;
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup<'a>(
        dir: &'a Path,
        files: &'a [(String, String)],
        tls: &'a ServerTls,
        release: (u32, u32, u32),
    ) -> NginxSetup<'a> {
        NginxSetup {
            dir,
            data_root: dir,
            files,
            ports: NginxPorts {
                http1: 1001,
                h2c: 1002,
                tls: 1003,
            },
            tls,
            release,
        }
    }

    fn tls() -> ServerTls {
        ServerTls {
            cert: "/t/cert.pem".into(),
            key: "/t/key.pem".into(),
            ca: "/t/ca.pem".into(),
        }
    }

    #[test]
    fn the_config_maps_each_chunk_file_and_picks_the_http2_syntax_by_version() {
        let files = vec![("b".to_owned(), "chunk-1048576.bin".to_owned())];
        let tls = tls();
        let old = config(&setup(Path::new("/w"), &files, &tls, (1, 22, 1))).unwrap();
        assert!(
            old.contains("\"b/chunk-1048576.bin\" \"/b/chunk-1048576.bin\";"),
            "{old}"
        );
        assert!(old.contains("listen 127.0.0.1:1001;"), "{old}");
        assert!(old.contains("listen 127.0.0.1:1002 http2;"), "{old}");
        assert!(old.contains("listen 127.0.0.1:1003 ssl http2;"), "{old}");
        assert!(!old.contains("http2 on;"), "{old}");
        assert!(old.contains("ssl_verify_client on;") && old.contains("\"/t/ca.pem\""));
        assert!(old.contains("pid \"/w/nginx.pid\";") && old.contains("worker_processes 1;"));
        let new = config(&setup(Path::new("/w"), &files, &tls, (1, 25, 1))).unwrap();
        assert!(new.contains("listen 127.0.0.1:1002;"), "{new}");
        assert_eq!(new.matches("http2 on;").count(), 2, "{new}");
        // Braces balance.
        assert_eq!(new.matches('{').count(), new.matches('}').count());
    }

    #[test]
    fn unsafe_paths_and_names_are_refused_naming_them() {
        let tls = tls();
        let files = vec![("b".to_owned(), "x;y".to_owned())];
        let err = config(&setup(Path::new("/w"), &files, &tls, (1, 22, 1))).unwrap_err();
        assert!(err.contains("x;y"), "{err}");
        let err = config(&setup(Path::new("/w$x"), &[], &tls, (1, 22, 1))).unwrap_err();
        assert!(err.contains("/w$x"), "{err}");
    }
}
