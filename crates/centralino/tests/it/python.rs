//! Starts `up` in-process (embedded mode and against RabbitMQ + PostgreSQL) and
//! runs the Python grpcio integrator client against it.

use std::path::Path;
use std::process::Command;

use centralino::Config;

fn tokens(config: &Config) -> [(String, String); 4] {
    let key = centralino::token_key(config).expect("key");
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("fits");
    let mint = |s: &str, r| key.mint(s, r, now, 600).expect("mint");
    use centralino_auth::Role;
    [
        ("--admin-token".into(), mint("py-admin", Role::Admin)),
        ("--agent-token".into(), mint("py-agent", Role::Agent)),
        (
            "--supervisor-token".into(),
            mint("py-supervisor", Role::Supervisor),
        ),
        (
            "--integrator-token".into(),
            mint("py-integrator", Role::Integrator),
        ),
    ]
}

async fn run_python_client(config: Config) {
    run_python_client_with(config, None).await;
}

async fn run_python_client_with(config: Config, tls_ca: Option<&Path>) {
    let (running, stop) = crate::start_up(&config).await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python");
    let addr = running.grpc_addr.to_string();
    let mut cmd = Command::new("python3");
    cmd.arg(dir.join("ops_client.py")).arg("--addr").arg(&addr);
    for (flag, token) in tokens(&config) {
        if flag != "--integrator-token" {
            cmd.arg(flag).arg(token);
        }
    }
    cmd.arg("--max-message-bytes")
        .arg(config.grpc.max_message_bytes.to_string());
    if let Some(ca) = tls_ca {
        // The certificate names localhost, so connect by name.
        cmd.arg("--tls-ca").arg(ca);
        cmd.arg("--addr")
            .arg(format!("localhost:{}", running.grpc_addr.port()));
    }
    let mode = if tls_ca.is_some() { "tls" } else { "plaintext" };
    run_script(cmd, &format!("{mode}: ")).await;
    if tls_ca.is_none() {
        // The history service as an integrator sees it: through the bus when
        // there is a RabbitMQ to publish on, through the API in every mode.
        let mut cmd = Command::new("python3");
        cmd.arg(dir.join("history_client.py"))
            .arg("--addr")
            .arg(&addr);
        for (flag, token) in tokens(&config) {
            if flag != "--supervisor-token" {
                cmd.arg(flag).arg(token);
            }
        }
        let mode = if config.bus.url.starts_with("amqp") {
            cmd.arg("--amqp-url").arg(&config.bus.url);
            cmd.arg("--bus-prefix").arg(&config.bus.prefix);
            "history (bus + api): "
        } else {
            "history (api): "
        };
        run_script(cmd, mode).await;
    }
    let _ = stop.send(());
    running.task.await.expect("join").expect("clean shutdown");
}

/// Runs one Python client; it must exit 0 and print `summary` (its mode and
/// `passed, 0 failed`).
async fn run_script(mut cmd: Command, summary: &str) {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect(
            "python3 runs; install the client's packages with \
             `python3 -m pip install -r tests/python/requirements.txt` (cargo xtask test does it)",
        );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}\n(if a module is missing: \
         python3 -m pip install -r tests/python/requirements.txt)"
    );
    assert!(
        stdout.contains(summary) && stdout.contains(" passed, 0 failed"),
        "{stdout}"
    );
}

/// Deletes the queues and exchanges `up` declared under `prefix`.
pub async fn delete_bus_objects(url: &str, prefix: &str) {
    let consumers = [
        &["routing", "email", "sms"],
        centralino_history::CONSUMERS.as_slice(),
    ]
    .concat();
    let (queues, exchanges) = centralino_test_support::rabbitmq_shared_objects(prefix, &consumers);
    centralino_test_support::delete_rabbitmq_objects(url, &queues, &exchanges).await;
}

fn base_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    config.grpc.listen = "127.0.0.1:0".into();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_against_embedded_mode() {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-up-"));
    run_python_client(base_config(&dir)).await;
    // The generated secret was written privately and reused.
    assert!(dir.join("auth.secret").exists());
    assert!(dir.join("centralino.sqlite").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_against_rabbitmq_and_postgres() {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-up-"));
    let db = centralino_test_support::TestDatabase::postgres().await;
    let mut config = base_config(&dir);
    config.bus.url = centralino_test_support::amqp_url();
    config.bus.prefix = centralino_test_support::bus_prefix("t");
    config.store.url = db.url.clone();
    config.auth.secret = "x".repeat(40);
    let prefix = config.bus.prefix.clone();
    let url = config.bus.url.clone();
    run_python_client(config).await;
    delete_bus_objects(&url, &prefix).await;
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_over_tls() {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-tls-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = self_signed(&dir);
    let mut config = base_config(&dir);
    config.grpc.tls_cert = cert.display().to_string();
    config.grpc.tls_key = key.display().to_string();
    run_python_client_with(config, Some(&cert)).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A self-signed certificate for localhost and 127.0.0.1 in `dir` (its
/// certificate and key files).
pub fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            // A server certificate, not a CA (rustls refuses a CA as the peer).
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the test certificate (Debian package openssl)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    (cert, key)
}

/// What a Python integrator does to answer customers and create work, in
/// the embedded mode: replies to an email (Dovecot in, aiosmtpd out) and to
/// an SMS (the SMSC simulator both ways), and a task an agent session is
/// offered; then what reached the peers is checked here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_answers_email_and_sms_and_creates_tasks() {
    answer_and_create_tasks("embedded", String::new()).await;
}

/// The same against RabbitMQ and PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_answers_and_creates_tasks_on_rabbitmq_and_postgres() {
    let db = centralino_test_support::TestDatabase::postgres().await;
    let url = centralino_test_support::amqp_url();
    let prefix = centralino_test_support::bus_prefix("t");
    let platform = format!(
        "[bus]\nurl = {url:?}\nprefix = {prefix:?}\n[store]\nurl = {db:?}\n[auth]\nsecret = {secret:?}\n",
        db = db.url,
        secret = "s".repeat(40),
    );
    answer_and_create_tasks("rabbitmq+postgres", platform).await;
    delete_bus_objects(&url, &prefix).await;
    db.drop_db().await;
}

async fn answer_and_create_tasks(mode: &str, platform: String) {
    use centralino_test_support::mail::{Dovecot, PASSWORD, Smsc, SmtpSink};
    const SUPPORT: &str = "support@example.test";
    let dovecot = Dovecot::start(&[SUPPORT]);
    let smtp = SmtpSink::start();
    let smsc = Smsc::start();
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-conv-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n{platform}[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [email]\npoll_interval_secs = 1\n\
             [email.smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\nsecurity = \"plain\"\n\
             [[email.mailboxes]]\nname = \"support\"\naddress = \"{SUPPORT}\"\nqueue = \"support\"\n\
             host = \"127.0.0.1\"\nport = {imap}\nsecurity = \"plain\"\nuser = \"{SUPPORT}\"\npassword = \"{PASSWORD}\"\n\
             [sms]\nnumbers = [{{ number = \"4321\", queue = \"support\" }}]\n\
             [sms.smpp]\nhost = \"127.0.0.1\"\nport = {smpp}\nsystem_id = \"centralino\"\npassword = \"secret\"\n\
             [[routing.queues]]\nname = \"support\"\nchannels = [\"email\", \"sms\", \"task\"]\n\
             [[routing.agents]]\nname = \"py-agent\"\n",
            data = dir.display().to_string(),
            smtp = smtp.port(),
            imap = dovecot.port(),
            smpp = smsc.port(),
        ),
    )
    .expect("config file");
    let config = Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    crate::email::append(
        dovecot.port(),
        SUPPORT,
        "From: Lucia Bianchi <lucia@example.test>\r\nTo: support@example.test\r\n\
         Subject: Contratto\r\nMessage-ID: <conv-1@example.test>\r\n\r\nVorrei disdire.\r\n",
    )
    .await;
    centralino_test_support::eventually(
        std::time::Duration::from_secs(30),
        "the SMS adapter bound to the SMSC",
        || async {
            smsc.mobile_originated("393331234567", "4321", "Il pacco non è arrivato")
                .then_some(())
        },
    )
    .await;

    let dir_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python");
    let mut cmd = Command::new("python3");
    cmd.arg(dir_py.join("conversation_client.py"))
        .arg("--addr")
        .arg(running.grpc_addr.to_string())
        .args(["--email", "lucia@example.test", "--phone", "+393331234567"])
        .args(["--queue", "support", "--mode", mode]);
    for (flag, token) in tokens(&config) {
        if flag == "--integrator-token" || flag == "--agent-token" {
            cmd.arg(flag).arg(token);
        }
    }
    run_script(cmd, &format!("{mode}: ")).await;

    // The email reply reached the SMTP server, threaded into the conversation.
    let replies: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .filter(|m| m.contains("abbiamo ricevuto"))
        .collect();
    assert_eq!(replies.len(), 1, "one reply reached aiosmtpd: {replies:?}");
    let reply = &replies[0];
    assert!(reply.contains("Subject: Re: Contratto"), "{reply}");
    assert!(
        reply.contains("In-Reply-To: <conv-1@example.test>"),
        "{reply}"
    );
    assert!(reply.contains("lucia@example.test"), "{reply}");
    // The SMS reply reached the SMSC in two UCS-2 parts (and the notification in one).
    let submitted = smsc.submitted();
    let parts: serde_json::Value = serde_json::from_str(&submitted).expect("SMSC JSON");
    let parts = parts.as_array().expect("a list");
    let to_customer: Vec<&serde_json::Value> = parts
        .iter()
        .filter(|p| {
            p["destination"]
                .as_str()
                .is_some_and(|d| d.ends_with("393331234567"))
        })
        .collect();
    assert_eq!(
        to_customer
            .iter()
            .filter(|p| p["data_coding"].as_u64() == Some(8))
            .count(),
        2,
        "the reply in two UCS-2 segments: {submitted}"
    );
    assert!(
        to_customer
            .iter()
            .any(|p| p["text"].as_str().is_some_and(|t| t.contains("123456"))),
        "the notification: {submitted}"
    );
    let _ = stop.send(());
    running.task.await.expect("join").expect("clean shutdown");
    let _ = std::fs::remove_dir_all(dir);
}
