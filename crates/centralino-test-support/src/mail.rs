//! Private protocol peers for tests: a Dovecot IMAP server, an SMTP sink
//! (aiosmtpd) and an SMPP SMSC simulator (npm smpp), each on free ports,
//! stopped when dropped. A missing program fails the test with how to install it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of every Dovecot test user.
pub const PASSWORD: &str = "secret";

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn wait_listening(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{what} did not listen on 127.0.0.1:{port} within 15 s; its log:\n{log}");
}

fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(crate::unique(prefix));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

/// A Dovecot instance of its own. Users are `name@example.test` with
/// [`PASSWORD`]; mail lives in Maildirs under the instance's directory.
pub struct Dovecot {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Dovecot {
    /// Starts Dovecot with `users` (full addresses), plain IMAP.
    pub fn start(users: &[&str]) -> Self {
        Self::start_with(users, false)
    }

    /// Starts Dovecot speaking IMAPS only, with a certificate for 127.0.0.1
    /// signed by a CA of its own ([`Dovecot::ca_file`]).
    pub fn start_tls(users: &[&str]) -> Self {
        Self::start_with(users, true)
    }

    /// The PEM file of the CA a TLS instance's certificate chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn start_with(users: &[&str], tls: bool) -> Self {
        let binary = Path::new("/usr/sbin/dovecot");
        assert!(
            binary.exists(),
            "Dovecot is not installed: apt-get install -y dovecot-imapd (`.ci/run` does this)"
        );
        let dir = temp_dir("dovecot");
        let port = free_port();
        let passwd: String = users
            .iter()
            .map(|u| format!("{u}:{{PLAIN}}{PASSWORD}\n"))
            .collect();
        std::fs::write(dir.join("passwd"), passwd).expect("passwd file");
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(dir.join(sub)).expect("dovecot dirs");
        }
        let d = dir.display();
        if tls {
            make_certificates(&dir);
        }
        let (ssl, listeners) = if tls {
            (
                format!("ssl = required\nssl_cert = <{d}/server.pem\nssl_key = <{d}/server.key\n"),
                format!(
                    "  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {port}\n    ssl = yes\n  }}\n"
                ),
            )
        } else {
            (
                "ssl = no\n".to_owned(),
                format!(
                    "  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n"
                ),
            )
        };
        let config = format!(
            "protocols = imap\n\
             listen = 127.0.0.1\n\
             {ssl}\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             mail_location = maildir:~/Maildir\n\
             first_valid_uid = 1\n\
             base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             mail_max_userip_connections = 100\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/home/%u\n}}\n\
             service imap-login {{\n{listeners}}}\n"
        );
        std::fs::write(dir.join("dovecot.conf"), config).expect("dovecot config");
        let status = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(dir.join("home"))
            .status()
            .expect("chown");
        assert!(
            status.success(),
            "chown of the Dovecot mail directory failed"
        );
        let mut dovecot = Self {
            dir,
            port,
            child: None,
        };
        dovecot.run();
        dovecot
    }

    fn run(&mut self) {
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dovecot starts");
        self.child = Some(child);
        wait_listening(self.port, "Dovecot", &self.dir.join("dovecot.log"));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Delivers `raw` into `user`'s INBOX with `doveadm save` (no IMAP needed,
    /// so it works for a TLS-only instance too).
    pub fn save(&self, user: &str, raw: &[u8]) {
        use std::io::Write as _;
        let mut child = Command::new("doveadm")
            .arg("-c")
            .arg(self.dir.join("dovecot.conf"))
            .args(["save", "-u", user])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("doveadm runs");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(raw).expect("message to doveadm");
        }
        let out = child.wait_with_output().expect("doveadm finishes");
        assert!(
            out.status.success(),
            "doveadm save failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (SIGTERM, as an operator would) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Its login and mail processes notice and exit; wait for the port.
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts it again on the same port with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Starts it again after [`Dovecot::stop`], on the same port and mail.
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.run();
        }
    }

    /// Restarts with `user`'s INBOX re-numbered: Dovecot's UID list and indexes
    /// are deleted, so the same messages come back under a new UIDVALIDITY (as
    /// after a restore from backup or a server migration).
    pub fn renumber(&mut self, user: &str) {
        self.stop();
        // UIDVALIDITY is a timestamp in seconds: make sure the new one differs.
        std::thread::sleep(Duration::from_millis(1_100));
        let maildir = self.dir.join("home").join(user).join("Maildir");
        for entry in std::fs::read_dir(&maildir)
            .expect("the user's Maildir")
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with("dovecot") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        self.run();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 it signed
/// (`server.pem`, `server.key`), made with openssl.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?} failed");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=Centralino test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
}

/// An SMTP server that keeps every accepted message as a file. Recipients whose
/// local part starts with `reject` are refused with 550; `later` with 451 on the
/// first two attempts.
pub struct SmtpSink {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

const SINK: &str = r#"
import asyncio, os, sys, uuid
from aiosmtpd.controller import Controller

out, port = sys.argv[1], int(sys.argv[2])
tries = {}

class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reject"):
            return "550 5.1.1 no such user"
        if local.startswith("later"):
            tries[address] = tries.get(address, 0) + 1
            if tries[address] <= 2:
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(out, uuid.uuid4().hex)
        with open(name + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name + ".eml")
        return "250 Message accepted"

controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
try:
    asyncio.get_event_loop().run_forever()
finally:
    controller.stop()
"#;

impl SmtpSink {
    pub fn start() -> Self {
        let dir = temp_dir("smtp");
        let port = free_port();
        std::fs::write(dir.join("sink.py"), SINK).expect("sink script");
        std::fs::create_dir_all(dir.join("mail")).expect("mail dir");
        let mut sink = Self {
            dir,
            port,
            child: None,
        };
        sink.run();
        sink
    }

    fn run(&mut self) {
        let log = std::fs::File::create(self.dir.join("sink.log")).expect("sink log");
        let child = Command::new("python3")
            .arg(self.dir.join("sink.py"))
            .arg(self.dir.join("mail"))
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("python3 runs");
        self.child = Some(child);
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(_)) = child.try_wait()
        {
            panic!(
                "the SMTP sink exited at once; is aiosmtpd installed? pip install aiosmtpd (`.ci/run` does this)"
            );
        }
        wait_listening(
            self.port,
            "the SMTP sink (pip install aiosmtpd; `.ci/run` does this)",
            &self.dir.join("sink.log"),
        );
    }

    /// Stops the server: the port refuses connections until [`SmtpSink::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, keeping what it received.
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.run();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message accepted so far, as raw bytes.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("mail"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The SMPP SMSC simulator of `tests/node/smsc.js` (npm `smpp`), on free
/// ports, with its control API. System id `centralino`, password `secret`.
pub struct Smsc {
    port: u16,
    control: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Smsc {
    pub fn start() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
        assert!(
            root.join("node_modules/smpp").exists(),
            "the SMSC simulator's packages are missing: (cd tests/node && npm ci) (`.ci/run` does this)"
        );
        let (port, control) = (free_port(), free_port());
        let log = std::env::temp_dir()
            .join(crate::unique("smsc"))
            .with_extension("log");
        let mut smsc = Self {
            port,
            control,
            child: None,
            log,
        };
        smsc.run();
        smsc
    }

    fn run(&mut self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
        let log = std::fs::File::create(&self.log).expect("smsc log");
        let child = Command::new("node")
            .arg(root.join("smsc.js"))
            .arg(self.port.to_string())
            .arg(self.control.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("node runs (Node.js is on the machine)");
        self.child = Some(child);
        wait_listening(self.control, "the SMSC simulator", &self.log);
        wait_listening(self.port, "the SMSC simulator", &self.log);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the simulator (every bind drops) and starts a fresh one on the
    /// same port.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// Starts a fresh simulator on the same port after [`Smsc::kill`].
    pub fn resume(&mut self) {
        if self.child.is_none() {
            self.run();
        }
    }

    /// Kills the simulator: the port refuses connections until [`Smsc::resume`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every submit_sm received (since the last start), as the simulator decoded it.
    pub fn submitted(&self) -> String {
        self.call("GET", "/submitted", "")
    }

    /// Sends a mobile-originated message to every bound session; false if none is bound.
    pub fn mobile_originated(&self, from: &str, to: &str, text: &str) -> bool {
        let body = format!(
            "{{\"from\":{},\"to\":{},\"text\":{}}}",
            json_string(from),
            json_string(to),
            json_string(text)
        );
        self.call("POST", "/mo", &body).contains("\"sent\"")
    }

    /// [`Smsc::mobile_originated`] with the text in the `message_payload` TLV
    /// and an empty `short_message`.
    pub fn mobile_originated_payload(&self, from: &str, to: &str, text: &str) -> bool {
        let body = format!(
            "{{\"from\":{},\"to\":{},\"text\":{},\"payload\":true}}",
            json_string(from),
            json_string(to),
            json_string(text)
        );
        self.call("POST", "/mo", &body).contains("\"sent\"")
    }

    /// Sends a concatenated mobile-originated message as `parts` (number, text),
    /// in the order given; false if no session is bound.
    pub fn mobile_originated_parts(&self, from: &str, to: &str, parts: &[(u8, &str)]) -> bool {
        let total = u8::try_from(parts.len()).unwrap_or(u8::MAX);
        self.mobile_originated_parts_of(from, to, total, parts)
    }

    /// [`Smsc::mobile_originated_parts`] announcing `total` parts, so some can
    /// be left out (a part the network lost).
    pub fn mobile_originated_parts_of(
        &self,
        from: &str,
        to: &str,
        total: u8,
        parts: &[(u8, &str)],
    ) -> bool {
        let parts: Vec<String> = parts
            .iter()
            .map(|(seq, text)| format!("[{seq},{}]", json_string(text)))
            .collect();
        let body = format!(
            "{{\"from\":{},\"to\":{},\"total\":{total},\"parts\":[{}]}}",
            json_string(from),
            json_string(to),
            parts.join(",")
        );
        self.call("POST", "/mo", &body).contains("\"sent\"")
    }

    /// Sends `count` messages (`text` + their number) from `from_prefix` + 7
    /// digits to the first bound session; false if none is bound.
    pub fn mobile_originated_many(
        &self,
        from_prefix: &str,
        to: &str,
        text: &str,
        count: usize,
    ) -> bool {
        let body = format!(
            "{{\"from_prefix\":{},\"to\":{},\"text\":{},\"count\":{count}}}",
            json_string(from_prefix),
            json_string(to),
            json_string(text)
        );
        self.call("POST", "/mo", &body).contains("\"sent\"")
    }

    /// Unbinds every session (an SMSC going down for maintenance); true when
    /// a session was bound and its `unbind_resp` came back.
    pub fn unbind(&self) -> bool {
        !self.call("POST", "/unbind", "").contains("\"unbound\":0")
    }

    /// Cuts every connection, as a network failure would.
    pub fn drop_connections(&self) {
        self.call("POST", "/drop", "");
    }

    fn call(&self, method: &str, path: &str, body: &str) -> String {
        use std::io::{Read as _, Write as _};
        let mut s = TcpStream::connect(("127.0.0.1", self.control)).expect("SMSC control port");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).expect("request");
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Drop for Smsc {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
