//! The browser application driven in headless Chromium: `tests/node/desktop.js`
//! (playwright-core, Debian's Chromium) behind a proxy that can cut its
//! network, one command at a time over its standard input and output.

use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// One browser (its pages and contexts) on a server's web address.
pub struct Desktop {
    child: Child,
    stdin: ChildStdin,
    answers: std::io::Lines<std::io::BufReader<ChildStdout>>,
}

impl Desktop {
    /// Starts the browser for the server at `server` (panics naming what to
    /// install when Chromium or the npm packages are missing).
    pub fn start(server: SocketAddr) -> Self {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
        assert!(
            root.join("node_modules/playwright-core").exists()
                && root.join("node_modules/axe-core").exists(),
            "tests/node's packages are missing: run `cargo xtask setup` (npm ci in tests/node)"
        );
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&chromium).exists(),
            "Chromium is missing at {chromium}: run `cargo xtask setup` (apt-get install chromium)"
        );
        let mut child = Command::new("node")
            .arg(root.join("desktop.js"))
            .arg(server.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (Debian package nodejs)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut answers = std::io::BufReader::new(stdout).lines();
        let ready = answers.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(ready, "READY", "the browser did not start");
        Self {
            child,
            stdin,
            answers,
        }
    }

    /// Sends one command (see `desktop.js`); its answer after `OK `. Panics
    /// when the browser reports a failure (its reason is on stderr).
    pub fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("send the command");
        let mut next = || self.answers.next();
        let line = match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(next),
            Err(_) => next(),
        }
        .and_then(Result::ok)
        .unwrap_or_default();
        match line.strip_prefix("OK ") {
            Some(answer) => answer.to_owned(),
            None => panic!("the browser failed `{command}` (its reason is above): {line:?}"),
        }
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
