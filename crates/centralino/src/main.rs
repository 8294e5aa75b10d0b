//! `centralino`: parses arguments, reads the environment (the only place that
//! does), installs telemetry and runs the chosen command.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use centralino::cli::{Cli, Command, DeadLetterAction, RemoteArgs, UserAction, parse_ttl};
use centralino::operator::Definitions;
use centralino::{Config, RunError};
use clap::Parser as _;

/// Exit code for invalid configuration or usage (EX_USAGE / EX_CONFIG style).
const EXIT_CONFIG: u8 = 64;

/// How to run another command on the same configuration: `centralino`, or
/// `centralino --config FILE` when the file was given on the command line
/// (the startup lines print it in what to try).
static SELF_COMMAND: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Whether this is the built-in demo (its users are created and printed).
static DEMO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// The password of the demo's users (the demo listens on loopback only).
const DEMO_PASSWORD: &str = "centralino-demo";

fn self_command() -> &'static str {
    SELF_COMMAND.get().map_or("centralino", String::as_str)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.config {
        let path = path.display().to_string();
        let quoted = if path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
        {
            path
        } else {
            format!("'{}'", path.replace('\'', "'\\''"))
        };
        let _ = SELF_COMMAND.set(format!("centralino --config {quoted}"));
    }
    let file = cli
        .config
        .clone()
        .or_else(|| std::env::var_os("CENTRALINO_CONFIG").map(Into::into));
    // Non-UTF-8 variables cannot be configuration: skip them instead of panicking.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    for name in Config::ignored_env(env.iter().map(|(k, _)| k.as_str())) {
        eprintln!(
            "centralino: ignoring {name}: not a setting (settings look like CENTRALINO_BUS__URL)"
        );
    }
    // `up` with no file on the embedded store and bus is the demo (and
    // `config` and `check` show that); with a database or a broker named,
    // or for the single services (run by docker-compose from variables
    // alone), the bare defaults: the demo never writes its sample queues
    // and agents into a real deployment.
    // The commands that talk to the deployment `up` runs follow it (so their
    // tokens come from the demo's key); the demo keeps its own data
    // directory (`data/demo`), apart from an embedded deployment of yours.
    let demo = file.is_none()
        && !matches!(
            cli.command,
            Command::Routing
                | Command::History
                | Command::Email
                | Command::Sms
                | Command::Voice
                | Command::Desk
                | Command::Migrate
                | Command::Health { .. }
                | Command::Config { demo: true }
        )
        && env.iter().all(|(k, v)| {
            // Matched as the loader matches them (any case after the prefix).
            match k.to_ascii_uppercase().as_str() {
                "CENTRALINO_BUS__URL" => v == "memory",
                "CENTRALINO_STORE__URL" => v.is_empty(),
                _ => true,
            }
        });
    let _ = DEMO.set(demo);
    let loaded = if demo {
        Config::load_demo(env)
    } else {
        Config::load(file.as_deref(), env)
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("centralino: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        eprintln!("centralino: a TLS crypto provider was already installed");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("centralino: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match run(cli.command, config, demo).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("centralino: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn telemetry(config: &Config, service: &str) -> Option<centralino_telemetry::TelemetryGuard> {
    let tc = centralino_telemetry::TelemetryConfig {
        service_name: service.to_owned(),
        format: centralino_telemetry::parse_format(&config.telemetry.format).unwrap_or_default(),
        filter: config.telemetry.filter.clone(),
        otlp_endpoint: Some(config.telemetry.otlp_endpoint.clone()).filter(|e| !e.is_empty()),
        // Colour only on a terminal, and never with NO_COLOR (no-color.org).
        ansi: std::io::IsTerminal::is_terminal(&std::io::stdout())
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    match centralino_telemetry::init(&tc) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("centralino: telemetry disabled: {e}");
            None
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts `services`, prints what listens where, and runs until Ctrl-C /
/// SIGTERM. A service that steps down (its leadership lost) does not end the
/// process: the services start again and contend for leadership.
async fn serve_and_wait(
    config: &Config,
    services: &[centralino::Service],
    connection: &str,
    telemetry_name: &str,
) -> Result<ExitCode, RunError> {
    let _guard = telemetry(config, telemetry_name);
    let mut first = true;
    centralino::serve_contending(
        config,
        services,
        connection,
        async {
            shutdown_signal().await;
            tracing::info!("shutting down");
        },
        |running| {
            if first {
                print_startup(config, services, telemetry_name, running);
                first = false;
            } else {
                println!(
                    "{telemetry_name} is up again (leading after a step-down): grpc {}",
                    running.grpc_addr
                );
            }
        },
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// What listens where, and what to try first.
fn print_startup(
    config: &Config,
    services: &[centralino::Service],
    telemetry_name: &str,
    running: &centralino::Running,
) {
    let scheme = if config.grpc.tls_cert.is_empty() {
        "http"
    } else {
        "https"
    };
    println!("{telemetry_name} {} is up", centralino::VERSION);
    println!(
        "  grpc    {scheme}://{}  ({})",
        running.grpc_addr,
        running.services.join(", ")
    );
    println!("          + grpc.health.v1.Health, server reflection");
    println!("  bus     {}", describe_bus(config));
    println!(
        "  store   {} ({})",
        redact(&config.store_url()),
        running.store_kind
    );
    if services.contains(&centralino::Service::Email) {
        println!("  email   {}", describe_email(config));
    }
    if services.contains(&centralino::Service::Sms) {
        println!("  sms     {}", describe_sms(config, running.sms_webhook));
    }
    if services.contains(&centralino::Service::Voice) {
        println!("  voice   {}", describe_voice(config, running.voice_sip));
    }
    if services.contains(&centralino::Service::Desk) {
        println!("  desk    {}", describe_desk(config, running.desk_http));
    }
    for line in &running.undefined_queues {
        println!("  WARNING {line}");
    }
    if !running.undefined_queues.is_empty() {
        println!(
            "          define them in [[routing.queues]] or with RoutingAdminService.UpsertQueue \
             (held work is then routed)"
        );
    }
    println!(
        "  web     {scheme}://{}/  (agent desktop, wallboard, admin)",
        running.grpc_addr
    );
    if DEMO.get().copied().unwrap_or(false) {
        println!(
            "          log in as {} (agents), giulia (supervisor) or admin; password {DEMO_PASSWORD}",
            config
                .routing
                .agents
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        println!(
            "          users: echo 'a password' | {} user add NAME --role agent|supervisor|admin",
            self_command()
        );
    }
    println!(
        "  tokens  {} token --role admin --subject you",
        self_command()
    );
    let tries = things_to_try(config, services, running);
    for (i, line) in tries.iter().enumerate() {
        println!("  {:<7} {line}", if i == 0 { "try" } else { "" });
    }
    println!("press Ctrl-C to stop");
}

/// What a newcomer can do first with what runs: call, take a ticket, look
/// at the board, connect as an agent.
fn things_to_try(
    config: &Config,
    services: &[centralino::Service],
    running: &centralino::Running,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let (true, Some(sip), Some(number)) = (
        services.contains(&centralino::Service::Voice),
        running.voice_sip,
        config.voice.numbers.first(),
    ) {
        lines.push(format!(
            "call sip:{}@{sip} (a softphone, or: sipp -sn uac -i {} -s {} {sip} -m 1 -rtp_echo -d 120000)",
            number.number,
            sip.ip(),
            number.number
        ));
    }
    if let (true, Some(http), Some(site), Some(service)) = (
        services.contains(&centralino::Service::Desk),
        running.desk_http,
        config.desk.sites.first(),
        config.desk.services.first(),
    ) {
        lines.push(format!(
            "take a ticket: curl -X POST http://{http}/api/sites/{}/tickets \
             -H 'content-type: application/json' -d '{{\"service\":\"{}\"}}'",
            site.id, service.code
        ));
        lines.push(format!("board http://{http}/sites/{}/board", site.id));
    }
    if services.contains(&centralino::Service::Routing) {
        let agents: Vec<&str> = config
            .routing
            .agents
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        if let Some(first) = agents.first() {
            lines.push(format!(
                "agent token: {} token --role agent --subject {first} (agents: {})",
                self_command(),
                agents.join(", ")
            ));
        }
        lines.push(format!("queues and agents now: {} status", self_command()));
        if !config.routing.queues.is_empty() {
            lines.push(format!(
                "queues: grpcurl -plaintext -H \"authorization: Bearer $({} token --role \
                 supervisor --subject you)\" {} centralino.v1.RoutingAdminService/ListQueues",
                self_command(),
                running.grpc_addr
            ));
        }
    }
    if let (true, Some(queue)) = (
        services.contains(&centralino::Service::History),
        config
            .routing
            .queues
            .iter()
            .find(|q| q.channels.iter().any(|c| c == "task")),
    ) {
        lines.push(format!(
            "a task: grpcurl -plaintext -H \"authorization: Bearer $({} token --role integrator \
             --subject crm)\" -d '{{\"request_id\":\"try-1\",\"title\":\"Call back\",\"queue\":\"{}\"}}' \
             {} centralino.v1.InteractionService/CreateTask",
            self_command(),
            queue.name,
            running.grpc_addr
        ));
    }
    lines
}

async fn run(command: Command, config: Config, demo: bool) -> Result<ExitCode, RunError> {
    match command {
        Command::Up => {
            if demo {
                println!(
                    "no configuration file: running the built-in demo contact center \
                     (`centralino config --demo` prints it; --config FILE replaces it)"
                );
                demo_users(&config).await?;
            }
            serve_and_wait(
                &config,
                &centralino::Service::ALL,
                "centralino-up",
                "centralino",
            )
            .await
        }
        Command::Routing => {
            serve_and_wait(
                &config,
                &[centralino::Service::Routing],
                "centralino-routing",
                "centralino-routing",
            )
            .await
        }
        Command::History => {
            serve_and_wait(
                &config,
                &[centralino::Service::History],
                "centralino-history",
                "centralino-history",
            )
            .await
        }
        Command::Email => {
            serve_and_wait(
                &config,
                &[centralino::Service::Email],
                "centralino-email",
                "centralino-email",
            )
            .await
        }
        Command::Sms => {
            serve_and_wait(
                &config,
                &[centralino::Service::Sms],
                "centralino-sms",
                "centralino-sms",
            )
            .await
        }
        Command::Voice => {
            serve_and_wait(
                &config,
                &[centralino::Service::Voice],
                "centralino-voice",
                "centralino-voice",
            )
            .await
        }
        Command::Desk => {
            serve_and_wait(
                &config,
                &[centralino::Service::Desk],
                "centralino-desk",
                "centralino-desk",
            )
            .await
        }
        Command::Migrate => {
            let db = centralino::connect_store(&config).await?;
            println!(
                "migrate: {} ({})",
                redact(&config.store_url()),
                centralino_store::backend_name(&db)
            );
            let applied =
                centralino::migrate_all(&db, |name| println!("migrate: applying {name}")).await?;
            if applied.is_empty() {
                println!("migrate: already up to date");
            } else {
                println!("migrate: applied {} migration(s)", applied.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => check(&config).await,
        Command::User { action } => user_command(&config, action).await,
        Command::Demo { .. } if !demo => Err(RunError::Io(
            "demo generates traffic only on the built-in demo: run it without --config, on the \
             embedded store and bus (no CENTRALINO_STORE__URL or CENTRALINO_BUS__URL)"
                .into(),
        )),
        Command::Demo {
            seconds,
            per_minute,
        } => demo_traffic(&config, seconds, per_minute).await,
        Command::Status { remote } => {
            let remote = connect_remote(&config, remote).await?;
            println!("{}", centralino::operator::status(&remote).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Queues { remote, .. } => list(&config, remote, Definitions::Queues).await,
        Command::Agents { remote, .. } => list(&config, remote, Definitions::Agents).await,
        Command::Skills { remote, .. } => list(&config, remote, Definitions::Skills).await,
        Command::DeadLetters { action, remote } => {
            let remote = connect_remote(&config, remote).await?;
            let text = match action {
                DeadLetterAction::List { queue } => {
                    let queues = queue.map_or_else(centralino::consumer_names, |q| vec![q]);
                    centralino::operator::dead_letters(&remote, &queues).await?
                }
                DeadLetterAction::Replay { queue, max } => {
                    centralino::operator::replay(&remote, &queue, max).await?
                }
            };
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { demo: true } => {
            print!("{}", centralino::config::DEMO);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { demo: false } => match toml::to_string(&config) {
            Ok(text) => {
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("centralino: the configuration cannot be printed: {e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Health { addr, service } => Ok(health(&addr, &service).await),
        Command::Token { role, subject, ttl } => {
            let Ok(role) = role.parse::<centralino_auth::Role>() else {
                eprintln!("centralino: --role must be agent, supervisor, integrator or admin");
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            let Some(ttl) = parse_ttl(&ttl) else {
                eprintln!("centralino: --ttl must look like 30m, 8h or 7d");
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let key = centralino::token_key(&config)?;
            println!("{}", key.mint(&subject, role, now, ttl)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn health(addr: &str, service: &str) -> ExitCode {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let check = async {
        let endpoint = tonic::transport::Endpoint::from_shared(addr.to_owned())
            .map_err(|e| format!("bad --addr: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(3));
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let resp = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map_err(|s| format!("health check failed: {}", s.message()))?;
        Ok::<i32, String>(resp.into_inner().status)
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), check).await {
        Ok(Ok(status))
            if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 =>
        {
            println!("SERVING");
            ExitCode::SUCCESS
        }
        Ok(Ok(status)) => {
            println!("NOT SERVING (status {status})");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("centralino: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("centralino: health check timed out");
            ExitCode::FAILURE
        }
    }
}

/// Connects to a running Centralino for the operator's commands; without
/// --token, with a short-lived admin token minted from this machine's key.
async fn connect_remote(
    config: &Config,
    args: RemoteArgs,
) -> Result<centralino::operator::Remote, RunError> {
    let token = match args.token {
        Some(t) => t,
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            centralino::token_key(config)?.mint(
                "centralino-cli",
                centralino_auth::Role::Admin,
                now,
                300,
            )?
        }
    };
    let defaulted = args.addr.is_none();
    let addr = match args.addr {
        Some(a) if a.contains("://") => a,
        Some(a) => format!("http://{a}"),
        None => {
            // Where this machine's configuration says the server listens.
            let listen = config
                .listen_addr()
                .ok_or_else(|| RunError::Io("grpc.listen is not an address; pass --addr".into()))?;
            let mut at = listen;
            if at.ip().is_unspecified() {
                at.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{at}")
        }
    };
    // A server here with TLS is asked over TLS, trusting its own certificate.
    let tls = addr.starts_with("https://") || (defaulted && !config.grpc.tls_cert.is_empty());
    let (addr, ca) = if tls {
        let ca = args
            .ca
            .or_else(|| {
                (!config.grpc.tls_cert.is_empty())
                    .then(|| std::path::PathBuf::from(&config.grpc.tls_cert))
            })
            .ok_or_else(|| {
                RunError::Io(
                    "an https address needs the certificate to trust: --ca FILE (the server's \
                     certificate or its CA, PEM)"
                        .into(),
                )
            })?;
        let pem =
            std::fs::read(&ca).map_err(|e| RunError::Io(format!("--ca {}: {e}", ca.display())))?;
        (addr.replacen("http://", "https://", 1), Some(pem))
    } else {
        (addr, None)
    };
    centralino::operator::Remote::connect(&addr, token, ca).await
}

async fn list(config: &Config, args: RemoteArgs, what: Definitions) -> Result<ExitCode, RunError> {
    let remote = connect_remote(config, args).await?;
    println!("{}", centralino::operator::list(&remote, what).await?);
    Ok(ExitCode::SUCCESS)
}

/// `centralino demo`: every service, plus arrivals and simulated agents,
/// with a progress line a second, until `seconds` pass or Ctrl-C.
async fn demo_traffic(
    config: &Config,
    seconds: u64,
    per_minute: u32,
) -> Result<ExitCode, RunError> {
    use std::sync::atomic::Ordering;
    let _guard = telemetry(config, "centralino-demo");
    demo_users(config).await?;
    // Arrivals and agents stop first (agents finish what they hold), then
    // the services: nothing is left assigned and nothing arrives at an
    // adapter that is stopping.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (services_tx, services_stop) = tokio::sync::watch::channel(false);
    let mut running = centralino::serve(
        config,
        &centralino::Service::ALL,
        "centralino-demo",
        async move {
            let mut rx = services_stop;
            let _ = rx.wait_for(|s| *s).await;
        },
    )
    .await?;
    print_startup(
        config,
        &centralino::Service::ALL,
        "centralino demo",
        &running,
    );
    let counts = std::sync::Arc::new(centralino::traffic::Counts::default());
    let traffic = tokio::spawn({
        let config = config.clone();
        let counts = counts.clone();
        let targets = centralino::traffic::Targets {
            grpc: running.grpc_addr,
            desk: running.desk_http,
            sms_webhook: running.sms_webhook,
            voice_sip: running.voice_sip,
        };
        let stop = stop_rx.clone();
        async move { centralino::traffic::run(&config, targets, per_minute, counts, stop).await }
    });
    let remote = centralino::operator::Remote::connect(
        &format!("http://{}", running.grpc_addr),
        centralino::token_key(config)?.mint(
            "centralino-demo",
            centralino_auth::Role::Supervisor,
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            86_400,
        )?,
        None,
    )
    .await?;
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctrl_c = shutdown_signal();
    tokio::pin!(ctrl_c);
    // The services' end, if they end by themselves (a failure).
    let mut ended = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut ctrl_c => break,
            r = &mut running.task => {
                ended = Some(r);
                break;
            }
        }
        let elapsed = started.elapsed().as_secs();
        let waiting = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            centralino::operator::waiting(&remote),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map_or_else(|| "?".to_owned(), |n| n.to_string());
        println!(
            "{elapsed:>4}s  created {}  offered {}  completed {}  waiting {waiting}  refused {}",
            counts.created.load(Ordering::Relaxed),
            counts.offered.load(Ordering::Relaxed),
            counts.completed.load(Ordering::Relaxed),
            counts.refused.load(Ordering::Relaxed),
        );
        if seconds > 0 && elapsed >= seconds {
            break;
        }
    }
    let _ = stop_tx.send(true);
    let traffic = traffic
        .await
        .map_err(|e| RunError::Io(format!("demo traffic: {e}")))?;
    let _ = services_tx.send(true);
    let served = match ended {
        Some(r) => r,
        None => running.task.await,
    }
    .map_err(|e| RunError::Io(format!("server task: {e}")))?;
    println!(
        "demo over: {} customers arrived ({} walk-ins, {} texts, {} tasks, {} calls; {} refused), {} offers, {} completed",
        counts.created.load(Ordering::Relaxed),
        counts.walk_ins.load(Ordering::Relaxed),
        counts.texts.load(Ordering::Relaxed),
        counts.tasks.load(Ordering::Relaxed),
        counts.calls.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
        counts.offered.load(Ordering::Relaxed),
        counts.completed.load(Ordering::Relaxed),
    );
    traffic?;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// `centralino check`: queues against routing's, and dead letters.
async fn check(config: &Config) -> Result<ExitCode, RunError> {
    let db = centralino::connect_store(config).await?;
    let mut attention = false;
    println!(
        "store   {} ({})",
        redact(&config.store_url()),
        centralino_store::backend_name(&db)
    );
    // Read only: a store that was never migrated is said so, not changed.
    let defined = match centralino_router::defined_queues(&db).await {
        Ok(d) => d,
        Err(e) => {
            println!("routing queues not readable ({e}): run `centralino migrate` first?");
            let _ = db.close().await;
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "routing {} queue(s) defined{}",
        defined.len(),
        if defined.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                defined.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    );
    let uses = centralino::adapter_queues(config);
    for (queue, users) in &uses {
        let mark = if defined.contains(queue) {
            "ok"
        } else {
            "MISSING"
        };
        println!(
            "  {mark:<7} {queue} <- {}",
            users.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let undefined = centralino::undefined_queues(config, &db).await?;
    for line in &undefined {
        println!("WARNING {line}");
    }
    attention |= !undefined.is_empty();
    if config.bus.url == "memory" {
        println!(
            "bus     in-process: dead letters live in the running process (OpsService.ListDeadLetters)"
        );
    } else {
        let bus = centralino::connect_bus(config, "centralino-status").await?;
        for consumer in centralino::consumer_names() {
            match bus.dead_letters(&consumer, 1_000).await {
                Ok(dead) if dead.is_empty() => println!("  dead letters {consumer}: none"),
                Ok(dead) => {
                    attention = true;
                    println!(
                        "  dead letters {consumer}: {}{} (OpsService.ListDeadLetters / ReplayDeadLetters)",
                        dead.len(),
                        if dead.len() >= 1_000 { "+" } else { "" }
                    );
                }
                // A service that never ran has no queue yet.
                Err(e) => println!("  dead letters {consumer}: not readable ({e})"),
            }
        }
    }
    let _ = db.close().await;
    Ok(if attention {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn describe_bus(config: &Config) -> String {
    if config.bus.url == "memory" {
        "in-process (embedded mode; set CENTRALINO_BUS__URL=amqp://... for RabbitMQ)".to_owned()
    } else {
        format!(
            "{} (exchanges {}.*)",
            redact(&config.bus.url),
            config.bus.prefix
        )
    }
}

fn describe_email(config: &Config) -> String {
    let mailboxes: Vec<String> = config
        .email
        .mailboxes
        .iter()
        .map(|m| format!("{} ({}:{} -> queue {})", m.address, m.host, m.port, m.queue))
        .collect();
    let imap = if mailboxes.is_empty() {
        "no mailboxes ([[email.mailboxes]] in the config file)".to_owned()
    } else {
        mailboxes.join(", ")
    };
    let smtp = match &config.email.smtp {
        Some(s) => format!("replies via {}:{}", s.host, s.port),
        None => "no [email.smtp]: replies wait".to_owned(),
    };
    format!("{imap}; {smtp}")
}

fn describe_sms(config: &Config, webhook: Option<std::net::SocketAddr>) -> String {
    let sms = &config.sms;
    if !sms.configured() {
        return "not configured ([sms.smpp] or [sms.webhook] in the config file)".to_owned();
    }
    let mut parts = Vec::new();
    if let Some(s) = &sms.smpp {
        parts.push(format!(
            "SMSC {}:{} (SMPP, as {})",
            s.host, s.port, s.system_id
        ));
    }
    if let (Some(w), Some(addr)) = (&sms.webhook, webhook) {
        parts.push(format!(
            "webhooks http://{addr}{}/inbound and /status",
            w.path.trim_end_matches('/')
        ));
    }
    if let (None, Some(r)) = (&sms.smpp, &sms.rest) {
        parts.push(format!("sending via {}", r.base_url));
    }
    let numbers: Vec<String> = sms
        .numbers
        .iter()
        .map(|n| format!("{} -> queue {}", n.number, n.queue))
        .collect();
    parts.push(numbers.join(", "));
    parts.join("; ")
}

fn describe_desk(config: &Config, http: Option<std::net::SocketAddr>) -> String {
    let desk = &config.desk;
    if !desk.configured() {
        return "not configured ([[desk.sites]] in the config file)".to_owned();
    }
    let Some(http) = http else {
        return "waiting".to_owned();
    };
    let sites: Vec<String> = desk
        .sites
        .iter()
        .map(|s| format!("{} ({} counters)", s.id, s.counters.len()))
        .collect();
    let board = desk
        .sites
        .first()
        .map(|s| format!("; board http://{http}/sites/{}/board", s.id))
        .unwrap_or_default();
    let auth = if desk.kiosk_auth {
        " (kiosk token: role kiosk)"
    } else {
        " (open: kiosk_auth = false)"
    };
    format!(
        "kiosk API http://{http}/api/sites/<site>/tickets{auth}; {}; {} service(s){board}",
        sites.join(", "),
        desk.services.len()
    )
}

fn describe_voice(config: &Config, sip: Option<std::net::SocketAddr>) -> String {
    let voice = &config.voice;
    if !voice.configured() {
        return "not configured ([voice.flows] in the config file)".to_owned();
    }
    let Some(sip) = sip else {
        return "not started".to_owned();
    };
    let mut media = match voice.media_ip.trim() {
        "" => sip.ip().to_string(),
        ip => ip.to_owned(),
    };
    if !voice.rtp_ports.trim().is_empty() {
        media.push_str(&format!(", RTP ports {}", voice.rtp_ports.trim()));
    }
    let mut numbers: Vec<String> = voice
        .numbers
        .iter()
        .map(|n| format!("{} -> {}", n.number, n.flow))
        .collect();
    if !voice.default_flow.trim().is_empty() {
        numbers.push(format!("others -> {}", voice.default_flow.trim()));
    }
    let mut text = format!("SIP udp+tcp {sip} (media {media}); {}", numbers.join(", "));
    if !voice.agents.is_empty() {
        text.push_str(&format!("; {} agent phone(s)", voice.agents.len()));
    }
    text
}

/// Hides the password in `scheme://user:password@host/...`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `centralino user …`: the browser application's users, in the store.
async fn user_command(config: &Config, action: UserAction) -> Result<ExitCode, RunError> {
    use centralino_web::{NewUser, UserRecord, Users};
    let db = centralino::connect_store(config).await?;
    centralino::migrate_all(&db, |name| eprintln!("migrate: applying {name}")).await?;
    let users = Users::new(db);
    let fail = |e: centralino_web::UserError| RunError::Io(format!("user: {e}"));
    let show = |u: &UserRecord| {
        let state = match (u.enabled, u.locked_until) {
            (false, _) => "disabled".to_owned(),
            (true, Some(t)) if t > chrono::Utc::now().timestamp_millis() => "locked".to_owned(),
            _ => "enabled".to_owned(),
        };
        format!(
            "{:<24} {:<11} {:<8} {:<3} {}",
            u.name, u.role, state, u.language, u.display_name
        )
    };
    match action {
        UserAction::Add {
            name,
            role,
            display_name,
            language,
        } => {
            let role = role
                .parse::<centralino_auth::Role>()
                .map_err(|e| RunError::Io(format!("user: --role: {e}")))?;
            let password = read_password()?;
            let u = users
                .create(NewUser {
                    name,
                    display_name,
                    role,
                    password,
                    language,
                })
                .await
                .map_err(fail)?;
            println!("user added: {}", show(&u));
        }
        UserAction::Passwd { name } => {
            let password = read_password()?;
            let u = users.set_password(&name, &password).await.map_err(fail)?;
            println!("password set, sessions ended: {}", show(&u));
        }
        UserAction::Disable { name } => {
            let u = users.set_enabled(&name, false).await.map_err(fail)?;
            println!("user disabled, sessions ended: {}", show(&u));
        }
        UserAction::Enable { name } => {
            let u = users.set_enabled(&name, true).await.map_err(fail)?;
            println!("user enabled: {}", show(&u));
        }
        UserAction::List => {
            let all = users.list().await.map_err(fail)?;
            if all.is_empty() {
                println!("no users yet: echo 'a password' | centralino user add NAME --role agent");
            }
            for u in &all {
                println!("{}", show(u));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of standard input (the password), without its line end.
fn read_password() -> Result<String, RunError> {
    use std::io::{BufRead as _, IsTerminal as _};
    if std::io::stdin().is_terminal() {
        eprint!("password (at least 10 characters; it is shown as you type): ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| RunError::Io(format!("reading the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The demo's users, created once: its agents, a supervisor and an admin,
/// all with [`DEMO_PASSWORD`].
async fn demo_users(config: &Config) -> Result<(), RunError> {
    use centralino_auth::Role;
    use centralino_web::{NewUser, UserError, Users};
    let db = centralino::connect_store(config).await?;
    centralino::migrate_all(&db, |_| {}).await?;
    let users = Users::new(db.clone());
    let mut wanted: Vec<(String, String, Role)> = config
        .routing
        .agents
        .iter()
        .map(|a| (a.name.clone(), a.display_name.clone(), Role::Agent))
        .collect();
    wanted.push(("giulia".into(), "Giulia Ferri".into(), Role::Supervisor));
    wanted.push(("admin".into(), "Admin".into(), Role::Admin));
    for (name, display_name, role) in wanted {
        let created = users
            .create(NewUser {
                name,
                display_name,
                role,
                password: DEMO_PASSWORD.into(),
                language: "it".into(),
            })
            .await;
        match created {
            Ok(_) | Err(UserError::Exists(_)) => {}
            Err(e) => return Err(RunError::Io(format!("demo users: {e}"))),
        }
    }
    let _ = db.close().await;
    Ok(())
}
