//! An email adapter in a runtime of its own (so a test can crash it), a private
//! Dovecot and SMTP sink, and an observer of what the adapter publishes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use centralino_bus::{
    AmqpBus, AmqpConfig, Bus, ConsumerSpec, Envelope, EnvelopeExt as _, Exchange, Topology,
    new_envelope,
};
use centralino_email::{
    AfterImport, EmailConfig, ImapEndpoint, MailboxConfig, Security, SmtpConfig,
};
use centralino_proto::v1;
use centralino_test_support::isolated::Isolated;
use centralino_test_support::mail::{Dovecot, PASSWORD, SmtpSink};
use centralino_test_support::observer::Observer;
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};

pub const SUPPORT: &str = "support@example.test";
pub const BILLING: &str = "billing@example.test";

fn amqp_config(prefix: &str, name: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(amqp_url());
    c.topology = Topology::new(prefix.to_owned());
    c.connection_name = name.to_owned();
    c
}

pub fn config(imap_port: u16, smtp_port: u16) -> EmailConfig {
    let mailbox = |name: &str, address: &str, queue: &str| MailboxConfig {
        name: name.into(),
        address: address.into(),
        display_name: "ACME Support".into(),
        queue: queue.into(),
        priority: 10,
        imap: ImapEndpoint {
            host: "127.0.0.1".into(),
            port: imap_port,
            security: Security::Plain,
            user: address.into(),
            password: PASSWORD.into(),
            folder: "INBOX".into(),
            tls_ca_file: None,
        },
        after_import: AfterImport::MarkSeen,
    };
    EmailConfig {
        mailboxes: vec![
            mailbox("support", SUPPORT, "support"),
            mailbox("billing", BILLING, "billing"),
        ],
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: smtp_port,
            security: Security::Plain,
            user: None,
            password: None,
        }),
        ack: None,
        poll_interval: Duration::from_secs(1),
        io_timeout: Duration::from_secs(10),
        retry_base: Duration::from_millis(200),
        ..EmailConfig::default()
    }
}

/// The adapter in its own runtime, its queue returning a delivery at most
/// `delivery_limit` times before dead-lettering it.
async fn launch(url: String, prefix: String, config: EmailConfig, delivery_limit: u32) -> Isolated {
    let (process, ()) = Isolated::start(move |ready, stop| async move {
        let conn = centralino_store::connect(&url, 8).await.expect("database");
        centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
            .await
            .expect("core migrations");
        centralino_store::migrate::<centralino_email::EmailMigrator>(&conn, |_| {})
            .await
            .expect("email migrations");
        let mut amqp = amqp_config(&prefix, "email-under-test");
        amqp.delivery_limit = delivery_limit;
        let bus: Arc<dyn Bus> = Arc::new(AmqpBus::connect(amqp).await.expect("bus"));
        let email = centralino_email::start(config, conn, bus, stop)
            .await
            .expect("email adapter starts");
        let _ = ready.send(());
        let _ = email.task.await;
    })
    .await;
    process
}

pub struct Env {
    pub db: TestDatabase,
    pub prefix: String,
    pub bus: Arc<dyn Bus>,
    pub dovecot: Dovecot,
    pub smtp: SmtpSink,
    pub config: EmailConfig,
    /// The adapter's delivery limit (set before [`Env::start`]).
    pub delivery_limit: u32,
    /// Everything the adapter published, in arrival order.
    pub published: Arc<Mutex<Vec<(String, Envelope)>>>,
    process: Option<Isolated>,
    /// Stopped before the queues are deleted, or it would declare them again.
    observer: Observer,
}

impl Env {
    pub async fn postgres(tune: impl FnOnce(&mut EmailConfig)) -> Self {
        Self::new(TestDatabase::postgres().await, tune).await
    }

    pub async fn sqlite(tune: impl FnOnce(&mut EmailConfig)) -> Self {
        Self::new(TestDatabase::sqlite(), tune).await
    }

    async fn new(db: TestDatabase, tune: impl FnOnce(&mut EmailConfig)) -> Self {
        let dovecot = Dovecot::start(&[SUPPORT, BILLING]);
        let smtp = SmtpSink::start();
        let mut config = config(dovecot.port(), smtp.port());
        tune(&mut config);
        let prefix = bus_prefix("em");
        let bus: Arc<dyn Bus> = Arc::new(
            AmqpBus::connect(amqp_config(&prefix, "email-test"))
                .await
                .expect("RabbitMQ is reachable (cargo xtask test starts it)"),
        );
        let observer = Observer::start(
            &bus,
            ConsumerSpec::new("observer").bind(Exchange::Events, "interaction.email.#"),
        )
        .await;
        let published = observer.seen();
        Self {
            db,
            prefix,
            bus,
            dovecot,
            smtp,
            config,
            delivery_limit: AmqpConfig::new(amqp_url()).delivery_limit,
            published,
            process: None,
            observer,
        }
    }

    pub async fn start(&mut self) {
        let p = launch(
            self.db.url.clone(),
            self.prefix.clone(),
            self.config.clone(),
            self.delivery_limit,
        )
        .await;
        self.process = Some(p);
    }

    pub fn crash(&mut self) {
        if let Some(p) = self.process.take() {
            p.crash();
        }
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.process.take() {
            p.stop().await;
        }
        self.observer.stop().await;
        let (queues, exchanges) =
            centralino_test_support::rabbitmq_shared_objects(&self.prefix, &["email", "observer"]);
        centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
        self.db.drop_db().await;
    }

    /// Delivers `raw` into `user`'s INBOX, as an MTA would.
    pub async fn deliver(&self, user: &str, raw: &[u8]) {
        self.deliver_many(user, &[raw.to_vec()]).await;
    }

    pub async fn deliver_many(&self, user: &str, raws: &[Vec<u8>]) {
        let mut s = imap_login(self.dovecot.port(), user).await;
        for raw in raws {
            s.append("INBOX", None, None, raw).await.expect("APPEND");
        }
        let _ = s.logout().await;
    }

    /// UIDs in `user`'s INBOX that are not `\Seen`.
    pub async fn unseen(&self, user: &str) -> usize {
        let mut s = imap_login(self.dovecot.port(), user).await;
        s.select("INBOX").await.expect("SELECT");
        let n = s.uid_search("UNSEEN").await.expect("SEARCH").len();
        let _ = s.logout().await;
        n
    }

    /// Payloads published under `key`.
    pub fn events<P: centralino_bus::TypedPayload>(&self, key: &str) -> Vec<P> {
        self.published
            .lock()
            .expect("published")
            .iter()
            .filter(|(k, _)| k == key)
            .filter_map(|(_, e)| e.decode::<P>().ok())
            .collect()
    }

    /// Distinct interactions created, by envelope (the bus may deliver one twice).
    pub fn created(&self) -> Vec<v1::Interaction> {
        let mut seen = HashSet::new();
        self.published
            .lock()
            .expect("published")
            .iter()
            .filter(|(k, e)| k == "interaction.email.created" && seen.insert(e.message_id.clone()))
            .filter_map(|(_, e)| e.decode::<v1::InteractionCreated>().ok()?.interaction)
            .collect()
    }

    /// Inbound messages by subject → the interactions they were filed under.
    pub fn threads_by_subject(&self) -> HashMap<String, HashSet<String>> {
        let mut out: HashMap<String, HashSet<String>> = HashMap::new();
        for m in self.events::<v1::MessageRecorded>("interaction.email.message") {
            if m.direction == v1::Direction::Inbound as i32 {
                out.entry(m.subject).or_default().insert(m.interaction_id);
            }
        }
        out
    }

    /// Sends an agent's reply the way the desktop's backend would.
    pub async fn reply(&self, interaction: &str, body: &str) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.send(v1::SendMessage {
            message_id: id.clone(),
            interaction_id: interaction.into(),
            channel: v1::Channel::Email as i32,
            body: body.into(),
            agent_id: "agent-7".into(),
            ..Default::default()
        })
        .await;
        id
    }

    pub async fn send(&self, cmd: v1::SendMessage) {
        let env = new_envelope("test-desktop", &cmd);
        self.bus
            .publish(Exchange::Commands, "email.send", &env)
            .await
            .expect("command published");
    }

    pub async fn sql_count(&self, sql: &str) -> i64 {
        use sea_orm::{ConnectionTrait as _, Statement};
        let conn = centralino_store::connect(&self.db.url, 1)
            .await
            .expect("db");
        let row = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a count")
    }
}

pub async fn imap_login(port: u16, user: &str) -> async_imap::Session<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("IMAP connect");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("greeting");
    client
        .login(user, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}

/// A plain customer email.
pub fn mail(from: &str, to: &str, subject: &str, id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Customer <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: {date}\r\n{extra}\r\n{body}\r\n",
        date = chrono::Utc::now().to_rfc2822()
    )
    .into_bytes()
}

/// Header `name` of a raw message, unfolded.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}
