//! The real binary, as an operator runs it.

use std::process::Command;

fn centralino(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_centralino"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CENTRALINO_DATA_DIR", data_dir);
    cmd
}

fn temp() -> std::path::PathBuf {
    std::env::temp_dir().join(centralino_test_support::unique("centralino-cli-"))
}

/// An empty configuration file in `dir`: `up` with it runs the bare defaults
/// (routing and history), not the demo with its fixed ports.
fn empty_config(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let file = dir.join("empty.toml");
    std::fs::write(&file, "").expect("config file");
    file
}

#[test]
fn help_lists_the_commands() {
    let out = centralino(&temp()).arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["up", "migrate", "token", "health", "sms", "voice"] {
        assert!(text.contains(cmd), "{cmd} missing from --help:\n{text}");
    }
}

#[test]
fn voice_says_where_it_listens_and_what_it_needs() {
    let dir = temp();
    let help = centralino(&dir)
        .args(["voice", "--help"])
        .output()
        .expect("run");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for what in [
        "SIP",
        "UDP and TCP",
        "127.0.0.1:5080",
        "[voice.flows]",
        "RTP",
    ] {
        assert!(
            text.contains(what),
            "{what} missing from voice --help:\n{text}"
        );
    }
    // Nothing configured: it says what to configure instead of idling.
    let out = centralino(&dir)
        .arg("voice")
        .env("CENTRALINO_GRPC__LISTEN", "127.0.0.1:0")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[voice.flows]") && err.contains("deploy/voice.toml"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn invalid_configuration_exits_64_naming_the_key() {
    let out = centralino(&temp())
        .arg("migrate")
        .env("CENTRALINO_STORE__URL", "mysql://nope")
        .env("CENTRALINO_GRPC__LISTEN", "everywhere")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("store.url") && err.contains("grpc.listen"),
        "{err}"
    );
}

#[test]
fn migrate_reports_progress_then_is_idempotent() {
    let dir = temp();
    let first = centralino(&dir).arg("migrate").output().expect("run");
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(text.contains("applying core_0001_inbox_outbox"), "{text}");
    let second = centralino(&dir).arg("migrate").output().expect("run");
    assert!(String::from_utf8_lossy(&second.stdout).contains("already up to date"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn token_mints_a_token_the_data_dir_key_verifies() {
    let dir = temp();
    let out = centralino(&dir)
        .args([
            "token",
            "--role",
            "integrator",
            "--subject",
            "crm",
            "--ttl",
            "1h",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let config = centralino::Config {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let claims = centralino::token_key(&config)
        .expect("key")
        .verify(&token, chrono_now())
        .expect("valid token");
    assert_eq!(
        (claims.sub.as_str(), claims.role),
        ("crm", centralino_auth::Role::Integrator)
    );
    let bad = centralino(&dir)
        .args(["token", "--role", "root", "--subject", "x"])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(64));
    let _ = std::fs::remove_dir_all(dir);
}

fn chrono_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("fits")
}

/// `up` starts even though the OpenTelemetry collector it is told to use is not
/// there, prints where it listens, answers `centralino health`, and stops cleanly
/// on SIGTERM.
#[test]
fn up_starts_without_a_collector_answers_health_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    use std::time::Duration;

    let dir = temp();
    let mut child = centralino(&dir)
        .arg("--config")
        .arg(empty_config(&dir))
        .arg("up")
        .env("CENTRALINO_GRPC__LISTEN", "127.0.0.1:0")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start up");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut grpc = None;
    while grpc.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("`up` prints its listeners within 30 s");
        if let Some(rest) = line.trim().strip_prefix("grpc") {
            grpc = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    let addr = grpc.expect("grpc address");
    assert!(addr.starts_with("http://127.0.0.1:"), "{addr}");

    let health = centralino(&dir)
        .args(["health", "--addr", &addr])
        .output()
        .expect("health");
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "SERVING");

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "up did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let unreachable = centralino(&dir)
        .args(["health", "--addr", &addr])
        .output()
        .expect("health");
    assert!(
        !unreachable.status.success(),
        "health fails once the server is gone"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `centralino check` names each adapter queue routing does not define, with
/// what sends work there, and exits 1; the same lines `up` prints at start.
#[test]
fn check_names_the_queues_routing_does_not_define() {
    let dir = temp();
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        "[[email.mailboxes]]\nname = \"support\"\naddress = \"support@example.test\"\n\
         queue = \"support\"\nhost = \"127.0.0.1\"\nuser = \"support@example.test\"\npassword = \"x\"\n\
         [sms]\nnumbers = [{ number = \"4321\", queue = \"sms\" }]\n\
         [sms.smpp]\nhost = \"127.0.0.1\"\nsystem_id = \"c\"\npassword = \"p\"\n",
    )
    .expect("config");
    let never_migrated = centralino(&dir)
        .arg("--config")
        .arg(&file)
        .arg("check")
        .output()
        .expect("run");
    assert_eq!(never_migrated.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&never_migrated.stdout).contains("centralino migrate"),
        "a store never migrated is said so, not migrated"
    );
    let migrated = centralino(&dir)
        .arg("--config")
        .arg(&file)
        .arg("migrate")
        .output()
        .expect("run");
    assert!(migrated.status.success());
    let out = centralino(&dir)
        .arg("--config")
        .arg(&file)
        .arg("check")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("routing 0 queue(s) defined"), "{text}");
    assert!(
        text.contains("MISSING support <- email mailbox support"),
        "{text}"
    );
    assert!(text.contains("MISSING sms <- sms number 4321"), "{text}");
    assert!(
        text.contains("WARNING queue \"support\" (email mailbox support) is not defined in routing: its work is held"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Logs written to a pipe (a container's log, a file) carry no colour codes,
/// and `up`'s startup lines come first.
#[test]
fn up_logs_without_colour_codes_when_not_on_a_terminal() {
    use std::io::{BufRead as _, BufReader};
    let dir = temp();
    let mut child = centralino(&dir)
        .arg("--config")
        .arg(empty_config(&dir))
        .arg("up")
        .env("CENTRALINO_GRPC__LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !seen
        .iter()
        .any(|l: &String| l.contains("press Ctrl-C to stop"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(text.contains("press Ctrl-C to stop"), "up started:\n{text}");
    assert!(
        text.contains("routing service started"),
        "the log is there:\n{text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour codes:\n{text}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Without a file the configuration in effect is the built-in demo, unless
/// a database or a broker is named: then the bare defaults, so the demo's
/// sample queues and agents never land in a real deployment.
#[test]
fn the_demo_runs_only_on_the_embedded_store_and_bus() {
    let dir = temp();
    let effective = |env: &[(&str, &str)]| {
        let mut cmd = centralino(&dir);
        cmd.arg("config");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("the printed configuration parses: {e}\n{text}"));
        text
    };
    let demo = effective(&[]);
    assert!(demo.contains("name = \"anna\""), "{demo}");
    for env in [
        (
            "CENTRALINO_BUS__URL",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        ),
        (
            "CENTRALINO_STORE__URL",
            "postgres://postgres@127.0.0.1/centralino",
        ),
    ] {
        let bare = effective(&[env]);
        assert!(!bare.contains("anna"), "{env:?}:\n{bare}");
    }
    let printed = centralino(&dir)
        .args(["config", "--demo"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&printed.stdout).contains("# The built-in demo"));
    let _ = std::fs::remove_dir_all(dir);
}

/// The operator's commands speak TLS to a deployment that does: by default
/// trusting this machine's grpc.tls_cert, or a certificate given with --ca.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_reach_a_tls_server() {
    let dir = temp();
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = crate::python::self_signed(&dir);
    let port = centralino_test_support::mail::free_port();
    let file = dir.join("tls.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = {cert:?}\ntls_key = {key:?}\n",
            data = dir.display().to_string(),
            cert = cert.display().to_string(),
            key = key.display().to_string(),
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    let run = |args: Vec<String>| {
        let mut cmd = centralino(&dir);
        cmd.arg("--config").arg(&file).args(args);
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output())
                .await
                .expect("join")
                .expect("run");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, status, err) = run(vec!["status".into()]).await;
    assert!(ok, "status over TLS by default: {err}");
    assert!(status.contains("agent(s)"), "{status}");
    let https = format!("https://localhost:{port}");
    let (ok, _, err) = run(vec![
        "queues".into(),
        "list".into(),
        "--addr".into(),
        https.clone(),
        "--ca".into(),
        cert.display().to_string(),
    ])
    .await;
    assert!(ok, "an https address with --ca: {err}");
    let (ok, _, err) = run(vec![
        "status".into(),
        "--addr".into(),
        format!("http://127.0.0.1:{port}"),
    ])
    .await;
    assert!(!ok, "plain text to a TLS listener fails");
    assert!(err.contains("https://"), "says what to do: {err}");
    let _ = stop.send(());
    running.task.await.expect("join").expect("clean shutdown");
    let _ = std::fs::remove_dir_all(dir);
}
