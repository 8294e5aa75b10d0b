//! The Centralino process: configuration, the `up` all-in-one runner, `migrate`
//! and `token`. `main.rs` only parses arguments, reads the environment and calls in
//! here, so tests start the same code in-process with an explicit [`Config`].

pub mod cli;
pub mod config;
pub mod operator;
pub mod traffic;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use centralino_auth::{AuthLayer, Policy, TokenKey};
use centralino_bus::{AmqpBus, AmqpConfig, Bus, MemoryBus, Topology};
use centralino_server::{GrpcServer, OpsApi, ProcessInfo};
use centralino_store::sea_orm::DatabaseConnection;

pub use config::{Config, ConfigError};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A failure that stops a command, with a message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("bus: {0}")]
    Bus(#[from] centralino_bus::BusError),
    #[error("store: {0}")]
    Store(#[from] centralino_store::StoreError),
    #[error("grpc: {0}")]
    Serve(#[from] centralino_server::ServeError),
    #[error("auth: {0}")]
    Auth(#[from] centralino_auth::AuthError),
    #[error("routing: {0}")]
    Routing(#[from] centralino_router::RouterError),
    #[error(transparent)]
    History(#[from] centralino_history::HistoryError),
    #[error(transparent)]
    Email(#[from] centralino_email::EmailError),
    #[error(transparent)]
    Sms(#[from] centralino_sms::SmsError),
    #[error(transparent)]
    Voice(#[from] centralino_voice::VoiceError),
    #[error(transparent)]
    Desk(#[from] centralino_desk::DeskError),
    #[error("{0}")]
    Io(String),
    /// A service lost its leadership (the database restarted or became
    /// unreachable, or another instance took over): everything stopped so
    /// that it can contend again ([`serve_contending`]).
    #[error("{0}")]
    SteppedDown(String),
}

impl RunError {
    /// Whether the environment, not the configuration, stopped a start: the
    /// database or broker unreachable or restarting, a leadership lock lost
    /// while waiting for it. Such a start is tried again, even the first.
    pub fn is_transient(&self) -> bool {
        use centralino_desk::DeskError as Desk;
        use centralino_email::EmailError as Email;
        use centralino_history::HistoryError as History;
        use centralino_router::RouterError as Router;
        use centralino_sms::SmsError as Sms;
        use centralino_voice::VoiceError as Voice;
        match self {
            RunError::SteppedDown(_) => true,
            RunError::Store(e)
            | RunError::Routing(Router::Store(e))
            | RunError::History(History::Store(e))
            | RunError::Email(Email::Store(e))
            | RunError::Sms(Sms::Store(e))
            | RunError::Voice(Voice::Store(e))
            | RunError::Desk(Desk::Store(e)) => e.is_transient(),
            RunError::Bus(e)
            | RunError::Routing(Router::Bus(e))
            | RunError::History(History::Bus(e))
            | RunError::Email(Email::Bus(e))
            | RunError::Sms(Sms::Bus(e))
            | RunError::Voice(Voice::Bus(e))
            | RunError::Desk(Desk::Bus(e)) => e.is_transient(),
            _ => false,
        }
    }
}

/// The signing key: the configured secret, or one generated once into the data dir.
pub fn token_key(config: &Config) -> Result<TokenKey, RunError> {
    if !config.auth.secret.is_empty() {
        return Ok(TokenKey::new(config.auth.secret.as_bytes().to_vec())?);
    }
    Ok(TokenKey::new(
        kept_secret(config, "auth.secret")?.into_bytes(),
    )?)
}

/// The secret in `<data_dir>/<file>`, generated (random, 64 hex digits) the
/// first time.
fn kept_secret(config: &Config, file: &str) -> Result<String, RunError> {
    let path = config.data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_owned()),
        Err(_) => {
            std::fs::create_dir_all(&config.data_dir)
                .map_err(|e| RunError::Io(format!("{}: {e}", config.data_dir.display())))?;
            let s = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            write_private(&path, &s)
        }
    }
}

/// The history service's suppression secret: `identity.suppression_secret`,
/// or one generated once and kept in `<data_dir>/suppression.secret`.
pub fn suppression_key(config: &Config) -> Result<centralino_history::SuppressionKey, RunError> {
    let secret = match config.identity.suppression_secret.trim() {
        "" => kept_secret(config, "suppression.secret")?,
        secret => secret.to_owned(),
    };
    centralino_history::SuppressionKey::new(secret.as_bytes())
        .map_err(|e| RunError::Io(format!("identity.suppression_secret: {e}")))
}

/// Writes `content` to `path` readable by the owner only, atomically: a crash or a
/// concurrent first start never leaves a partial file. If another process got
/// there first, its file wins and is returned.
fn write_private(path: &Path, content: &str) -> Result<String, RunError> {
    use std::io::Write as _;
    let io = |e: std::io::Error| RunError::Io(format!("{}: {e}", path.display()));
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(content.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    // hard_link fails if the target exists, so the first writer wins.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(content.to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path).map_err(io)?.trim().to_owned())
        }
        Err(e) => Err(io(e)),
    }
}

/// Connects the configured bus: in-process, or RabbitMQ.
pub async fn connect_bus(config: &Config, name: &str) -> Result<Arc<dyn Bus>, RunError> {
    if config.bus.url == "memory" {
        return Ok(Arc::new(MemoryBus::new(config.bus.delivery_limit)));
    }
    let mut amqp = AmqpConfig::new(config.bus.url.clone());
    amqp.topology = Topology::new(config.bus.prefix.clone());
    amqp.delivery_limit = config.bus.delivery_limit;
    amqp.publish_window = config.bus.publish_window;
    amqp.connection_name = name.to_owned();
    Ok(Arc::new(AmqpBus::connect(amqp).await?))
}

/// [`connect_bus`] and [`connect_store`] for a service that starts: a
/// RabbitMQ or PostgreSQL that is not reachable yet (a container started
/// before them, or one of them restarting) is waited for, tried again after
/// 1 s doubling to 5 s, instead of ending the process, whose supervisor
/// would restart it with waits of its own that grow to a minute. So the
/// service is up within seconds of their return. SQLite errors are final.
pub async fn connect_waiting(
    config: &Config,
    name: &str,
) -> Result<(Arc<dyn Bus>, DatabaseConnection), RunError> {
    let mut backoff = centralino_bus::Backoff::peer();
    let bus = loop {
        match connect_bus(config, name).await {
            Ok(bus) => break bus,
            Err(e) if config.bus.url != "memory" => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "bus: RabbitMQ not reachable; waiting for it");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    };
    backoff.reset();
    let postgres = config.store_url().starts_with("postgres");
    let db = loop {
        match connect_store(config).await {
            Ok(db) => break db,
            Err(RunError::Store(centralino_store::StoreError::Connect(e))) if postgres => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "store: PostgreSQL not reachable; waiting for it");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    };
    Ok((bus, db))
}

/// Connects the configured store, creating the data dir for SQLite.
pub async fn connect_store(config: &Config) -> Result<DatabaseConnection, RunError> {
    let url = config.store_url();
    if url.starts_with("sqlite:") && config.store.url.is_empty() {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| RunError::Io(format!("{}: {e}", config.data_dir.display())))?;
    }
    Ok(centralino_store::connect(&url, config.store.max_connections).await?)
}

/// Applies every service's migrations (the shared tables first), reporting
/// each one through `progress`.
pub async fn migrate_all(
    db: &DatabaseConnection,
    mut progress: impl FnMut(&str),
) -> Result<Vec<String>, RunError> {
    let mut applied =
        centralino_store::migrate::<centralino_store::CoreMigrator>(db, &mut progress).await?;
    applied
        .extend(centralino_store::migrate::<centralino_web::WebMigrator>(db, &mut progress).await?);
    for service in Service::ALL {
        applied.extend(service.migrate(db, &mut progress).await?);
    }
    Ok(applied)
}

/// The bus consumer (queue) names of every service, for dead letters.
pub fn consumer_names() -> Vec<String> {
    Service::ALL.iter().flat_map(|s| s.consumers()).collect()
}

/// Every routing queue the channel adapters' configuration sends work to,
/// with what sends it there (`email mailbox support`, `voice flow main`, …).
pub fn adapter_queues(
    config: &Config,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut uses: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    let mut add = |queue: &str, what: String| {
        if !queue.trim().is_empty() {
            uses.entry(queue.trim().to_owned())
                .or_default()
                .insert(what);
        }
    };
    for m in &config.email.mailboxes {
        add(&m.queue, format!("email mailbox {}", m.name));
    }
    if config.sms.configured() {
        for n in &config.sms.numbers {
            add(&n.queue, format!("sms number {}", n.number));
        }
        add(
            &config.sms.default_queue,
            "sms numbers not listed (sms.default_queue)".to_owned(),
        );
    }
    if let Ok(Some(voice)) = config.voice.voice_config(&config.identity) {
        for (name, flow) in &voice.flows {
            for menu in flow.menus.values() {
                for action in menu.options.values().chain([&menu.default]) {
                    if let centralino_telephony::ivr::Action::Queue { queue, .. } = action {
                        add(queue, format!("voice flow {name}"));
                    }
                }
            }
        }
    }
    if let Ok(Some(desk)) = config.desk.desk_config(&config.identity) {
        for service in &desk.services {
            for site in &desk.sites {
                add(
                    &service.queue.replace("{site}", &site.id),
                    format!("desk service {} at {}", service.code, site.id),
                );
            }
        }
    }
    uses
}

/// The adapters' queues routing has not defined, each with what sends work
/// there and what becomes of it: one line each, for the startup lines and the log.
pub async fn undefined_queues(
    config: &Config,
    db: &DatabaseConnection,
) -> Result<Vec<String>, RunError> {
    let defined = centralino_router::defined_queues(db).await?;
    let default = config.routing.default_queue.trim();
    let fallback = (!default.is_empty() && defined.contains(default)).then_some(default);
    Ok(adapter_queues(config)
        .into_iter()
        .filter(|(queue, _)| !defined.contains(queue))
        .map(|(queue, users)| {
            let fate = match fallback {
                Some(d) => format!("its work goes to the default queue {d}"),
                None => "its work is held (routing's dead letters) until the queue is defined"
                    .to_owned(),
            };
            format!(
                "queue {queue:?} ({}) is not defined in routing: {fate}",
                users.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
        .collect())
}

/// A running `up`: where it listens, and the task serving it.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub bus_kind: &'static str,
    pub store_kind: &'static str,
    pub services: Vec<String>,
    /// Where the SMS provider's webhooks listen, when the adapter runs with them.
    pub sms_webhook: Option<SocketAddr>,
    /// Where SIP (UDP and TCP) listens, when the voice adapter runs.
    pub voice_sip: Option<SocketAddr>,
    /// Where the desk's kiosk and board API listens, when it runs.
    pub desk_http: Option<SocketAddr>,
    /// The adapters' queues routing does not define, one line each (see
    /// [`undefined_queues`]), as they stood at start.
    pub undefined_queues: Vec<String>,
    /// The bus the services share (in-process in the embedded mode), for an
    /// embedding program or a test that talks to them as another service would.
    pub bus: Arc<dyn Bus>,
    pub task: tokio::task::JoinHandle<Result<(), RunError>>,
}

/// A service `centralino` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Routing,
    History,
    Email,
    /// Runs when `[sms.smpp]` or `[sms.webhook]` is configured.
    Sms,
    /// Runs when `[voice.flows]` defines a flow.
    Voice,
    /// Runs when `[[desk.sites]]` defines a site.
    Desk,
}

impl Service {
    /// Every service: what `up` runs, what `migrate` migrates, whose queues
    /// `status` and the contract test read. A new service is one more entry
    /// here and one arm in each method below.
    pub const ALL: [Service; 6] = [
        Service::Routing,
        Service::History,
        Service::Email,
        Service::Sms,
        Service::Voice,
        Service::Desk,
    ];

    /// Applies this service's migrations (its own migration table).
    async fn migrate(
        self,
        db: &DatabaseConnection,
        progress: &mut impl FnMut(&str),
    ) -> Result<Vec<String>, RunError> {
        use centralino_store::migrate;
        Ok(match self {
            Service::Routing => migrate::<centralino_router::RoutingMigrator>(db, progress).await?,
            Service::History => {
                migrate::<centralino_history::HistoryMigrator>(db, progress).await?
            }
            Service::Email => migrate::<centralino_email::EmailMigrator>(db, progress).await?,
            Service::Sms => migrate::<centralino_sms::SmsMigrator>(db, progress).await?,
            Service::Voice => migrate::<centralino_voice::VoiceMigrator>(db, progress).await?,
            Service::Desk => migrate::<centralino_desk::DeskMigrator>(db, progress).await?,
        })
    }

    /// The bus consumers (queues) this service declares.
    pub fn consumers(self) -> Vec<String> {
        match self {
            Service::Routing => vec![centralino_router::SERVICE.to_owned()],
            Service::History => vec![
                centralino_history::consumer_spec().name,
                centralino_history::commands_spec().name,
            ],
            Service::Email => vec![centralino_email::consumer_spec().name],
            Service::Sms => vec![centralino_sms::consumer_spec().name],
            Service::Voice => vec![centralino_voice::consumer_spec().name],
            Service::Desk => vec![centralino_desk::consumer_spec().name],
        }
    }
}

/// The configuration sections of the services, each taken by its start.
struct Sections {
    routing: Option<centralino_router::RouterConfig>,
    history: Option<centralino_history::HistoryConfig>,
    email: Option<centralino_email::EmailConfig>,
    sms: Option<centralino_sms::SmsConfig>,
    voice: Option<centralino_voice::VoiceConfig>,
    desk: Option<centralino_desk::DeskConfig>,
}

/// What every service is started on.
struct Host<'a> {
    db: &'a DatabaseConnection,
    bus: &'a Arc<dyn Bus>,
    max_message_bytes: usize,
}

/// The addresses services listen on besides the gRPC server.
#[derive(Default)]
struct Listeners {
    sms_webhook: Option<SocketAddr>,
    voice_sip: Option<SocketAddr>,
    desk_http: Option<SocketAddr>,
}

/// A started service, as the host keeps it: its last task (which ends once
/// it stopped and released its leadership), the flag that turns when it
/// loses its leadership, and the gRPC services it added to the server.
struct Hosted {
    name: &'static str,
    task: tokio::task::JoinHandle<()>,
    lost: tokio::sync::watch::Receiver<bool>,
    grpc: &'static [&'static str],
}

impl Service {
    /// Starts this service (waiting for its leadership) with its section
    /// of `sections`, adds its gRPC services to `server` and its listeners
    /// to `listeners`. `None` when its section is not configured.
    async fn start(
        self,
        host: Host<'_>,
        sections: &mut Sections,
        shutdown: impl Future<Output = ()> + Send + 'static,
        server: &mut GrpcServer,
        listeners: &mut Listeners,
    ) -> Result<Option<Hosted>, RunError> {
        let (db, bus, max) = (host.db.clone(), host.bus.clone(), host.max_message_bytes);
        Ok(Some(match self {
            Service::Routing => {
                let Some(config) = sections.routing.take() else {
                    return Ok(None);
                };
                let router = centralino_router::start(config, db, bus, max, shutdown).await?;
                server.add(router.agent);
                server.add(router.desk);
                server.add(router.supervisor);
                server.add(router.admin);
                Hosted {
                    name: "routing",
                    task: router.task,
                    lost: router.lost,
                    grpc: &centralino_router::GRPC_SERVICES,
                }
            }
            Service::History => {
                let Some(config) = sections.history.take() else {
                    return Ok(None);
                };
                let history = centralino_history::start(config, db, bus, max, shutdown).await?;
                server.add(history.api);
                server.add(history.conversations);
                server.add(history.tasks);
                Hosted {
                    name: "history",
                    task: history.task,
                    lost: history.lost,
                    grpc: &centralino_history::GRPC_SERVICES,
                }
            }
            Service::Email => {
                let Some(config) = sections.email.take() else {
                    return Ok(None);
                };
                let email = centralino_email::start(config, db, bus, shutdown).await?;
                Hosted {
                    name: "email",
                    task: email.task,
                    lost: email.lost,
                    grpc: &[],
                }
            }
            Service::Sms => {
                let Some(config) = sections.sms.take() else {
                    return Ok(None);
                };
                let sms = centralino_sms::start(config, db, bus, shutdown).await?;
                listeners.sms_webhook = sms.webhook_addr;
                Hosted {
                    name: "sms",
                    task: sms.task,
                    lost: sms.lost,
                    grpc: &[],
                }
            }
            Service::Voice => {
                let Some(config) = sections.voice.take() else {
                    return Ok(None);
                };
                let voice = centralino_voice::start(config, db, bus, shutdown).await?;
                listeners.voice_sip = Some(voice.sip_addr);
                Hosted {
                    name: "voice",
                    task: voice.task,
                    lost: voice.lost,
                    grpc: &[],
                }
            }
            Service::Desk => {
                let Some(config) = sections.desk.take() else {
                    return Ok(None);
                };
                let desk = centralino_desk::start(config, db, bus, max, shutdown).await?;
                server.add(desk.api);
                listeners.desk_http = Some(desk.http_addr);
                Hosted {
                    name: "desk",
                    task: desk.task,
                    lost: desk.lost,
                    grpc: centralino_desk::GRPC_SERVICES,
                }
            }
        }))
    }
}

/// Starts every service in this process and returns once all are listening.
/// Everything stops when `shutdown` resolves.
pub async fn up(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, RunError> {
    serve(config, &Service::ALL, "centralino-up", shutdown).await
}

/// How long services must have run for a step-down to count as a new
/// incident (its wait starts small again) rather than part of a flap.
const STABLE_RUN: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs the given services like [`serve`] until `shutdown`, and when one
/// of them steps down (its leadership lost: a database restart, a cut
/// connection, another instance taking over) stops them all and starts them
/// again, waiting for the database and contending for leadership as a
/// standby would, instead of exiting. `on_up` is called each time they are
/// up (their addresses may change when configured as port 0).
pub async fn serve_contending(
    config: &Config,
    which: &[Service],
    name: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut on_up: impl FnMut(&Running),
) -> Result<(), RunError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // One bus and one store for every start: the in-process bus keeps what
    // it holds, and the pool reconnects by itself.
    let (bus, db) = tokio::select! {
        r = connect_waiting(config, name) => r?,
        () = stopped() => return Ok(()),
    };
    let mut first = true;
    let mut backoff = centralino_bus::Backoff::peer();
    let result = loop {
        let started = tokio::select! {
            r = serve_on(config, which, bus.clone(), db.clone(), stopped()) => r,
            () = stopped() => break Ok(()),
        };
        let running = match started {
            Ok(running) => running,
            // The first start validated the configuration: a later one that
            // fails is the environment (the database still coming back), as
            // is a first one that failed on the database or the broker (a
            // standby whose lock wait was cut by a database restart).
            Err(e) if !first || e.is_transient() => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "not started again yet; retrying");
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = stopped() => break Ok(()),
                }
            }
            Err(e) => break Err(e),
        };
        first = false;
        on_up(&running);
        let up_since = tokio::time::Instant::now();
        match running.task.await {
            Ok(Err(RunError::SteppedDown(why))) => {
                // A leadership that keeps being lost (a flapping database, a
                // pooler that breaks the lock) must not restart everything
                // every few seconds: the waits grow unless the services ran
                // for a while.
                if up_since.elapsed() > STABLE_RUN {
                    backoff.reset();
                }
                let wait = backoff.next_wait();
                tracing::warn!(%why, retry_in_ms = wait.as_millis() as u64, "stepped down; contending for leadership again");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stopped() => break Ok(()),
                }
            }
            Ok(result) => break result,
            Err(e) => break Err(RunError::Io(format!("server task: {e}"))),
        }
    };
    let _ = db.close().await;
    result
}

/// Starts the given services (plus the Ops API and health) on one gRPC server.
pub async fn serve(
    config: &Config,
    which: &[Service],
    name: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, RunError> {
    let (bus, db) = connect_waiting(config, name).await?;
    let mut running = serve_on(config, which, bus, db.clone(), shutdown).await?;
    let inner = running.task;
    running.task = tokio::spawn(async move {
        let result = inner
            .await
            .unwrap_or_else(|e| Err(RunError::Io(format!("server task: {e}"))));
        let _ = db.close().await;
        result
    });
    Ok(running)
}

/// [`serve`] on a bus and store already connected (left open at the end).
async fn serve_on(
    config: &Config,
    which: &[Service],
    bus: Arc<dyn Bus>,
    db: DatabaseConnection,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, RunError> {
    for name in migrate_all(&db, |name| {
        tracing::info!(migration = name, "applying migration")
    })
    .await?
    {
        tracing::debug!(migration = %name, "applied");
    }
    let key = token_key(config)?;
    let routing = config
        .routing
        .router_config()
        .map_err(|e| RunError::Io(e.join("; ")))?;
    let mut history = config
        .identity
        .history_config()
        .map_err(|e| RunError::Io(e.join("; ")))?;
    if which.contains(&Service::History) && history.suppression_key.is_none() {
        history.suppression_key = Some(suppression_key(config)?);
    }
    let email = config
        .email
        .email_config()
        .map_err(|e| RunError::Io(e.join("; ")))?;
    let sms = config
        .sms
        .sms_config(&config.identity)
        .map_err(|e| RunError::Io(e.join("; ")))?;
    if which == [Service::Sms] && sms.is_none() {
        return Err(RunError::Io(
            "sms: nothing to run; configure [sms.smpp] or [sms.webhook] (see deploy/sms.toml)"
                .into(),
        ));
    }
    let voice = config
        .voice
        .voice_config(&config.identity)
        .map_err(|e| RunError::Io(e.join("; ")))?;
    if which == [Service::Voice] && voice.is_none() {
        return Err(RunError::Io(
            "voice: nothing to run; configure [voice.flows] (see deploy/voice.toml)".into(),
        ));
    }

    let desk = config
        .desk
        .desk_config(&config.identity)
        .map_err(|e| RunError::Io(e.join("; ")))?
        .map(|mut desk| {
            desk.kiosk_key = config.desk.kiosk_auth.then(|| key.clone());
            desk
        });
    if which == [Service::Desk] && desk.is_none() {
        return Err(RunError::Io(
            "desk: nothing to run; configure [[desk.sites]] (see deploy/desk.toml)".into(),
        ));
    }

    // One shutdown signal for the server and every service.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    // A start that fails (or is cancelled) half-way stops the services it
    // already started, so none of them keeps its lock and consumes unseen.
    let half_started = StopUnlessStarted(Some(stop_tx.clone()));
    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = on_signal.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let mut policy = Policy::default();
    centralino_server::ops_policy(&mut policy);
    centralino_router::policy(&mut policy);
    centralino_history::policy(&mut policy);
    centralino_desk::policy(&mut policy);
    let settings = config.grpc_settings();
    let max = settings.max_message_bytes;
    centralino_web::policy(&mut policy);
    let web = centralino_web::WebApi::new(
        db.clone(),
        centralino_web::WebSettings {
            tls: settings.tls.is_some(),
            https_proxy: config
                .grpc
                .browser_origins
                .iter()
                .any(|o| o.starts_with("https://")),
            trusted_proxies: config
                .grpc
                .trusted_proxies
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
        },
    );
    let auth = AuthLayer::new(key, policy).with_sessions(
        Arc::new(web.sessions()),
        config.grpc.browser_origins.clone(),
    );
    let mut server = GrpcServer::new(settings, auth);
    server
        .add(web.session_server(max))
        .add(web.user_admin_server(max))
        .fallback(centralino_web::assets::router());
    let mut services = vec!["centralino.v1.OpsService".to_owned()];
    let mut listeners = Listeners::default();
    let mut tasks = Vec::new();
    let failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    // A service that lost its leadership stops every service here, so that
    // they contend again together (`serve_contending`): nothing of this
    // instance writes once another may lead.
    let stop_on_loss = |service: &'static str, mut lost: tokio::sync::watch::Receiver<bool>| {
        let stop = stop_tx.clone();
        let flag = failure.clone();
        tokio::spawn(async move {
            if lost.wait_for(|l| *l).await.is_ok() {
                tracing::error!(service, "lost its leadership; stopping");
                if let Ok(mut f) = flag.lock() {
                    *f = Some(format!(
                        "{service} lost its leadership (the database restarted or is \
                         unreachable, or another instance took over)"
                    ));
                }
                let _ = stop.send(true);
            }
        });
    };
    let mut sections = Sections {
        routing: Some(routing),
        history: Some(history),
        email: Some(email),
        sms,
        voice,
        desk,
    };
    for service in Service::ALL.into_iter().filter(|s| which.contains(s)) {
        let host = Host {
            db: &db,
            bus: &bus,
            max_message_bytes: max,
        };
        let Some(hosted) = service
            .start(host, &mut sections, stopped(), &mut server, &mut listeners)
            .await?
        else {
            continue;
        };
        services.extend(hosted.grpc.iter().map(|s| (*s).to_owned()));
        tasks.push(hosted.task);
        stop_on_loss(hosted.name, hosted.lost);
    }
    server.add(
        OpsApi::new(
            bus.clone(),
            ProcessInfo {
                version: VERSION.to_owned(),
                services: services.clone(),
                store: centralino_store::backend_name(&db).to_owned(),
            },
        )
        .into_server(max),
    );
    let (grpc_addr, serve) = server.bind(stopped()).await?;
    // Said loudly at start: work for a queue routing does not know is not routed.
    let undefined_queues = match undefined_queues(config, &db).await {
        Ok(lines) => lines,
        Err(e) => vec![format!("routing's queues could not be read: {e}")],
    };
    for line in &undefined_queues {
        tracing::warn!("{line}");
    }
    let store_kind = centralino_store::backend_name(&db);
    let bus_kind = bus.kind();
    let shared_bus = bus.clone();
    let task = tokio::spawn(async move {
        let result = serve.await.map_err(RunError::from);
        for t in tasks {
            let _ = t.await;
        }
        let failed = failure.lock().ok().and_then(|mut f| f.take());
        drop(bus);
        match failed {
            Some(why) => Err(RunError::SteppedDown(why)),
            None => result,
        }
    });
    half_started.started();
    Ok(Running {
        grpc_addr,
        bus_kind,
        store_kind,
        services,
        sms_webhook: listeners.sms_webhook,
        voice_sip: listeners.voice_sip,
        desk_http: listeners.desk_http,
        undefined_queues,
        bus: shared_bus,
        task,
    })
}

/// Stops the services of a start that did not complete (see `serve_on`).
struct StopUnlessStarted(Option<Arc<tokio::sync::watch::Sender<bool>>>);

impl StopUnlessStarted {
    fn started(mut self) {
        self.0 = None;
    }
}

impl Drop for StopUnlessStarted {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(true);
        }
    }
}
