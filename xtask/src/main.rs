//! Project automation, run as `cargo xtask <command>`.
//!
//! - `test`: checks (and where it can, starts) RabbitMQ and PostgreSQL, installs
//!   what the suite needs and the machine lacks (Dovecot, SIPp, baresip and
//!   Chromium with apt-get when root, else it stops with the command to run;
//!   the npm and Python packages), builds the web application (`web/dist`,
//!   which the binary embeds) and runs its unit tests, then runs the whole
//!   suite with cargo-nextest (or `cargo test` when nextest is absent).
//! - `ci`: what `.ci/run` runs: `test`'s set-up, the web build (failing when
//!   it differs from the committed bundle), fmt and clippy, the suite.
//! - `setup`: `test`'s set-up alone.
//! - `codegen`: regenerates `crates/centralino-proto/src/gen` from `proto/`.
//! - `lint`: `cargo fmt --check` and clippy with warnings denied.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("codegen") => codegen(),
        Some("lint") => lint(),
        Some("ci") => ci(),
        Some("setup") => prepare(),
        Some("bench-smoke") => prepare().and_then(|()| benchmarks_smoke()),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 test [ARGS]  install and start what the suite needs, run every test (ARGS go to nextest)\n  \
                 ci           what CI runs: test's set-up, then fmt and clippy, then every test\n  \
                 setup        only test's set-up: install and start what the suite needs\n  \
                 codegen      regenerate crates/centralino-proto/src/gen from proto/\n  \
                 lint         cargo fmt --check and clippy -D warnings\n  \
                 bench-smoke  run every benchmark program small (also the last step of test)"
            );
            return ExitCode::from(64);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn reachable(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).ok())
        .is_some()
}

fn wait_for(addr: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if reachable(addr) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

struct Service {
    name: &'static str,
    addr: &'static str,
    start: &'static str,
}

const SERVICES: [Service; 2] = [
    Service {
        name: "RabbitMQ",
        addr: "127.0.0.1:5672",
        start: "rabbitmq-server -detached",
    },
    Service {
        name: "PostgreSQL",
        addr: "127.0.0.1:5432",
        start: "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    },
];

fn ensure_services() -> Result<(), String> {
    for s in &SERVICES {
        if reachable(s.addr) {
            eprintln!("xtask: {} is up on {}", s.name, s.addr);
            continue;
        }
        eprintln!(
            "xtask: {} is not reachable on {}, starting it with `{}`",
            s.name, s.addr, s.start
        );
        let started = Command::new("sh").arg("-c").arg(s.start).status();
        if !matches!(started, Ok(st) if st.success()) || !wait_for(s.addr, Duration::from_secs(60))
        {
            return Err(format!(
                "{} is needed on {} and could not be started; start it with `{}` \
                 (or point CENTRALINO_TEST_AMQP_URL / CENTRALINO_TEST_DATABASE_URL elsewhere)",
                s.name, s.addr, s.start
            ));
        }
        eprintln!("xtask: {} started", s.name);
    }
    Ok(())
}

fn ensure_python_packages() -> Result<(), String> {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import grpc, grpc_tools, grpc_health, grpc_reflection, pika, aiosmtpd, twilio",
        ])
        .stderr(std::process::Stdio::null())
        .status();
    if matches!(probe, Ok(s) if s.success()) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing the Python test client's packages (tests/python/requirements.txt)"
    );
    run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-r",
        "tests/python/requirements.txt",
    ]))
}

/// A program the suite talks to, from Debian's packages.
struct DebianPeer {
    /// What it is and which tests need it.
    what: &'static str,
    package: &'static str,
    /// Where the package puts the program the tests run.
    program: &'static str,
    /// Whether the tests also find it on `PATH` (else only at `program`).
    on_path: bool,
}

const DEBIAN_PEERS: [DebianPeer; 4] = [
    DebianPeer {
        what: "Dovecot, the IMAP server of the email tests",
        package: "dovecot-imapd",
        program: "/usr/sbin/dovecot",
        on_path: false,
    },
    DebianPeer {
        what: "SIPp, the callers of the voice tests",
        package: "sip-tester",
        program: "/usr/bin/sipp",
        on_path: true,
    },
    DebianPeer {
        what: "baresip, the agents' phones of the voice tests",
        package: "baresip-core",
        program: "/usr/bin/baresip",
        on_path: true,
    },
    DebianPeer {
        what: "Chromium, the browser of the desk's board test",
        package: "chromium",
        program: "/usr/bin/chromium",
        on_path: false,
    },
];

/// Whether `peer` is where the tests look for it: at its path, or (for
/// those the tests run by name) under its name on `PATH`.
fn installed(peer: &DebianPeer) -> bool {
    let path = std::path::Path::new(peer.program);
    if path.exists() {
        return true;
    }
    if !peer.on_path {
        return false;
    }
    let Some(name) = path.file_name() else {
        return false;
    };
    std::env::var_os("PATH")
        .is_some_and(|dirs| std::env::split_paths(&dirs).any(|d| d.join(name).is_file()))
}

/// The Debian peers this machine lacks (a `CHROMIUM` variable naming another
/// browser stands for Chromium).
fn missing_debian_peers() -> Vec<&'static DebianPeer> {
    DEBIAN_PEERS
        .iter()
        .filter(|p| !installed(p))
        .filter(|p| !(p.package == "chromium" && std::env::var_os("CHROMIUM").is_some()))
        .collect()
}

/// Is this process root (so it may run apt-get)? From `/proc/self/status`.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            == Some("0")
    })
}

/// Installs what the suite needs and this machine lacks, saying what it
/// installs: the Debian peers with apt-get (as root; otherwise it stops,
/// before anything is built, with the one command to run), then the npm
/// packages of `tests/node` (the SMSC simulator, playwright-core).
fn ensure_peers() -> Result<(), String> {
    let missing = missing_debian_peers();
    if !missing.is_empty() {
        let packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
        for p in &missing {
            eprintln!("xtask: missing {} ({})", p.what, p.program);
        }
        if !running_as_root() {
            return Err(format!(
                "the test suite needs these Debian packages; install them, then run this again:\n\n    \
                 sudo apt-get update && sudo apt-get install -y {}\n",
                packages.join(" ")
            ));
        }
        eprintln!(
            "xtask: installing from Debian's packages: {}",
            packages.join(" ")
        );
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        // dpkg's progress lines go; its errors stay on stderr.
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null()))?;
        let still: Vec<&str> = missing_debian_peers().iter().map(|p| p.program).collect();
        if !still.is_empty() {
            return Err(format!(
                "apt-get finished but these are still missing: {}",
                still.join(", ")
            ));
        }
        eprintln!("xtask: installed {}", packages.join(" "));
    }
    // The packages' own services (Dovecot's) are not used: the tests start
    // private instances on free ports.
    npm_ci(
        "tests/node",
        &["smpp", "playwright-core", "axe-core"],
        "the test peers' npm packages (tests/node: smpp, playwright-core, axe-core)",
    )?;
    npm_ci(
        "web",
        &["vite", "@bufbuild/buf"],
        "the web application's build packages (web: vite, buf, preact, connect-web)",
    )
}

/// `npm ci` in `dir` unless its packages are installed from the current
/// lockfile (npm keeps its copy in node_modules/.package-lock.json).
fn npm_ci(dir: &str, must_have: &[&str], what: &str) -> Result<(), String> {
    let root = std::path::Path::new(dir);
    let node = root.join("node_modules");
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (
        modified(&root.join("package-lock.json")),
        modified(&node.join(".package-lock.json")),
    ) {
        (Some(lock), Some(installed)) => lock > installed,
        _ => true,
    };
    if stale || must_have.iter().any(|p| !node.join(p).exists()) {
        eprintln!("xtask: installing {what}");
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(root))?;
    }
    Ok(())
}

/// Builds the web application (`web/dist`, embedded in the binary, and the
/// TypeScript generated from the protos) from its lockfile and runs its
/// unit tests. With `check`, fails when the build differs from what is
/// committed (CI: the bundle cannot drift from its source).
fn web(check: bool) -> Result<(), String> {
    eprintln!("xtask: building the web application (web/dist)");
    run(Command::new("npm")
        .args(["run", "--silent", "build"])
        .current_dir("web"))?;
    run(Command::new("npm")
        .args(["test", "--silent"])
        .current_dir("web"))?;
    if check {
        let out = Command::new("git")
            .args(["status", "--porcelain", "--", "web/dist", "web/src/gen"])
            .output()
            .map_err(|e| format!("git status: {e}"))?;
        let changed = String::from_utf8_lossy(&out.stdout);
        if !changed.trim().is_empty() {
            return Err(format!(
                "the committed web bundle differs from a fresh build (run `npm run build` in                  web/ and commit web/dist and web/src/gen):\n{changed}"
            ));
        }
    }
    Ok(())
}

/// What every run of the suite needs first: RabbitMQ and PostgreSQL up, the
/// peers and packages installed.
fn prepare() -> Result<(), String> {
    ensure_services()?;
    ensure_peers()?;
    ensure_python_packages()
}

/// Drops test databases left behind by interrupted runs (best effort; needs psql).
fn drop_stale_test_databases() {
    let psql = |sql: &str| {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atqc",
                sql,
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let Some(out) = psql("SELECT datname FROM pg_database WHERE datname LIKE 'centralino_test_%'")
    else {
        return;
    };
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    let stale: Vec<&str> = names.lines().filter(|l| !l.is_empty()).collect();
    if stale.is_empty() {
        return;
    }
    eprintln!("xtask: dropping {} stale test database(s)", stale.len());
    for name in stale {
        let _ = psql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
    }
}

// `BUS_PREFIXES`: the bus prefixes of the test suites and benchmarks
// (`bus_prefix(prefix)`: prefix + 10 hex digits), kept in one place.
include!("../../crates/centralino-test-support/src/prefixes.rs");

/// Is `name` a queue made by a test run (a test prefix + 10 hex digits) or the
/// bus benchmark (`bench` + 8 hex digits), followed by `.`?
fn is_test_queue(name: &str) -> bool {
    let hex_then_dot = |rest: &str, n: usize| {
        rest.len() > n
            && rest[..n].bytes().all(|b| b.is_ascii_hexdigit())
            && rest.as_bytes()[n] == b'.'
    };
    name.strip_prefix("bench")
        .is_some_and(|r| hex_then_dot(r, 8))
        || BUS_PREFIXES
            .iter()
            .any(|p| name.strip_prefix(p).is_some_and(|r| hex_then_dot(r, 10)))
}

/// Kills `centralino` processes a killed test run left behind (the
/// split-brain test's instances run from a `centralino-split-brain-*`
/// directory; a stopped one would keep its leadership locks): best effort.
fn kill_stray_test_processes() {
    let _ = Command::new("pkill")
        .args(["-KILL", "-f", "centralino-split-brain-"])
        .status();
}

/// Deletes RabbitMQ queues left behind by interrupted test runs (best effort).
fn delete_stale_test_queues() {
    let Ok(out) = Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "name", "--no-table-headers"])
        .output()
    else {
        return;
    };
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let stale: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|n| is_test_queue(n))
        .collect();
    if stale.is_empty() {
        return;
    }
    eprintln!(
        "xtask: deleting {} stale test queue(s) from RabbitMQ",
        stale.len()
    );
    for q in stale {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_queue", q])
            .output();
    }
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn test(extra: &[String]) -> Result<(), String> {
    prepare()?;
    web(false)?;
    suite(extra)
}

/// CI's whole run, on a clean clone: what `test` installs, then fmt and
/// clippy, then the suite. `.ci/run` is just this, so CI and the README's
/// command cannot drift apart.
fn ci() -> Result<(), String> {
    prepare()?;
    web(true)?;
    lint()?;
    suite(&[])
}

/// The suite in its three phases (restart tests alone, everything, the
/// benchmarks smoke-sized), after clearing what interrupted runs left.
fn suite(extra: &[String]) -> Result<(), String> {
    drop_stale_test_databases();
    delete_stale_test_queues();
    kill_stray_test_processes();
    if has_nextest() {
        // nextest does not run doctests: run them first, so the suite's summary
        // is the last thing printed.
        run(cargo().args(["test", "--workspace", "--doc", "--quiet"]))?;
        // Tests that restart RabbitMQ or PostgreSQL run alone, one at a time,
        // before everything else.
        eprintln!(
            "xtask: phase 1: restart tests (RabbitMQ, then PostgreSQL, are stopped and started)"
        );
        run(cargo().args([
            "nextest",
            "run",
            "-p",
            "centralino-bus",
            "-p",
            "centralino-store",
            "-p",
            "centralino-history",
            "-p",
            "centralino",
            "--run-ignored",
            "only",
            "--test-threads",
            "1",
            "--no-fail-fast",
        ]))?;
        wait_for("127.0.0.1:5672", Duration::from_secs(30));
        wait_for("127.0.0.1:5432", Duration::from_secs(30));
        eprintln!("xtask: phase 2: the whole suite");
        run(cargo()
            .args(["nextest", "run", "--workspace", "--no-fail-fast"])
            .args(extra))?;
        if extra.is_empty() {
            benchmarks_smoke()?;
        }
        Ok(())
    } else {
        eprintln!("xtask: cargo-nextest not found (cargo install cargo-nextest), using cargo test");
        run(cargo().args([
            "test",
            "-p",
            "centralino-bus",
            "-p",
            "centralino-store",
            "-p",
            "centralino-history",
            "-p",
            "centralino",
            "--test",
            "it",
            "--",
            "--ignored",
            "--test-threads",
            "1",
        ]))?;
        run(cargo().args(["test", "--workspace"]).args(extra))?;
        if extra.is_empty() {
            benchmarks_smoke()?;
        }
        Ok(())
    }
}

/// Every benchmark program, with the tiny sizes of its smoke run:
/// (package, example, arguments).
const BENCHMARKS: &[(&str, &str, &[&str])] = &[
    ("centralino-routing", "bench", &["20000"]),
    ("centralino-routing", "simulate", &["200", "2"]),
    ("centralino-bus", "bus_bench", &["500", "1"]),
    ("centralino-router", "ingest_bench", &["50", "2", "5"]),
    ("centralino-history", "history_bench", &["ingest", "200"]),
    (
        "centralino-history",
        "history_bench",
        &["api", "200", "2", "20", "2"],
    ),
    ("centralino-email", "email_bench", &["50", "10"]),
    ("centralino", "email_burst", &["50", "sqlite"]),
    ("centralino", "desk_latency", &["10", "3"]),
    ("centralino-sms", "sms_bench", &["50"]),
    ("centralino-voice", "voice_bench", &["2", "4", "2", "1"]),
    ("centralino-desk", "desk_bench", &["50", "2", "2"]),
];

/// Runs each benchmark program small (seconds, debug build), so none of them
/// rots: each must run to its end and print its comparison with the raw
/// baseline (a ratio). Its figures are not judged here.
fn benchmarks_smoke() -> Result<(), String> {
    eprintln!("xtask: phase 3: every benchmark program, smoke-sized");
    run(cargo().args(["build", "--quiet", "--workspace", "--examples"]))?;
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target"))
        .join("debug")
        .join("examples");
    let mut failed = Vec::new();
    for (package, example, args) in BENCHMARKS {
        let started = std::time::Instant::now();
        let out = Command::new(dir.join(example))
            .args(*args)
            .output()
            .map_err(|e| format!("{package} {example}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        // How each program words its comparison with the raw baseline.
        let ratio = ["ratio", "×", "ours / raw", "engine-vs-raw"]
            .iter()
            .any(|w| stdout.contains(w));
        let ok = out.status.success() && ratio;
        eprintln!(
            "  {} {package} --example {example} -- {} ({:.1} s)",
            if ok { "ok  " } else { "FAIL" },
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        if !ok {
            eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            failed.push(format!("{package}/{example}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "benchmarks that did not run to their ratio line: {}",
            failed.join(", ")
        ))
    }
}

fn codegen() -> Result<(), String> {
    run(cargo()
        .args(["test", "-p", "centralino-proto", "--test", "it", "codegen"])
        .env("CENTRALINO_BLESS", "1"))
}

fn lint() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_test_queues_match() {
        assert!(super::is_test_queue("t1efd1cfeb1.app.dead"));
        assert!(super::is_test_queue("bench0a1b2c3d.bench"));
        assert!(super::is_test_queue("sma3d4d53c17.history-commands.dead"));
        assert!(super::is_test_queue("hicb7a9aa4c4.observer.dead"));
        assert!(!super::is_test_queue("centralino.history"));
        assert!(!super::is_test_queue("t1efd1cfeb1"));
        assert!(!super::is_test_queue("tzzzzzzzzzz.app"));
    }
}
