//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Centralino: an omnichannel contact center (voice, email, SMS, walk-in desk).
///
/// Configuration comes from an optional TOML file (--config or CENTRALINO_CONFIG)
/// overlaid with CENTRALINO_* environment variables, e.g. CENTRALINO_BUS__URL sets
/// bus.url. Without a file, `up` runs the built-in demo contact center (an IVR,
/// a walk-in desk, SMS webhooks, sample queues and agents) in one process on an
/// embedded SQLite file under ./data and an in-process bus.
#[derive(Debug, Parser)]
#[command(
    name = "centralino",
    version,
    about,
    long_about,
    propagate_version = true
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process and print what listens where.
    ///
    /// Uses RabbitMQ and PostgreSQL when bus.url / store.url point at them;
    /// otherwise an in-process bus and a SQLite file in the data directory.
    /// Without --config, runs the built-in demo (`centralino config --demo`
    /// prints it); a configuration file replaces it entirely.
    Up,
    /// Run `up` and bring it to life: walk-ins take tickets at the kiosk and
    /// customers text the SMS webhook (signed as the provider signs), while
    /// simulated agents log in, accept, handle for 5-20 s and complete.
    /// Prints a progress line a second; Ctrl-C stops it cleanly. Voice and
    /// email traffic are not generated yet.
    Demo {
        /// How long to run, in seconds (0: until Ctrl-C).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// New customers a minute.
        #[arg(long, default_value_t = 30)]
        per_minute: u32,
    },
    /// Print the configuration in effect (the file and CENTRALINO_* variables
    /// with every default filled in), or with --demo the built-in demo file.
    Config {
        /// Print the built-in demo configuration, with its comments.
        #[arg(long)]
        demo: bool,
    },
    /// Run the routing service alone (one container per service in docker-compose).
    ///
    /// Consumes new and abandoned interactions from RabbitMQ, offers them to agents
    /// and serves AgentService, SupervisorService and RoutingAdminService. A second
    /// instance on the same database waits as a standby until the first stops.
    Routing,
    /// Run the customer-history service alone.
    ///
    /// Consumes every interaction, routing and message event from RabbitMQ, resolves
    /// customers across channels, keeps their timeline and consent ledger, and
    /// serves HistoryService.
    History,
    /// Run the email adapter alone.
    ///
    /// Imports the [[email.mailboxes]] over IMAP (each message exactly once, as a
    /// new conversation or a follow-up), publishes them on RabbitMQ, and sends the
    /// agents' replies (email.send commands) through [email.smtp].
    Email,
    /// Run the SMS adapter alone.
    ///
    /// Binds to the SMSC in [sms.smpp] and/or serves the provider's webhooks
    /// ([sms.webhook]); customers' messages become conversations on RabbitMQ,
    /// agents' replies (sms.send commands) leave as exact segments, STOP and
    /// START are honoured at once and recorded in history's consent ledger.
    Sms,
    /// Run the voice adapter alone.
    ///
    /// Answers SIP calls (UDP and TCP on [voice] listen, 127.0.0.1:5080 by
    /// default; RTP from media_ip on ephemeral UDP ports) to the [[voice.numbers]],
    /// walks callers through their IVR flow ([voice.flows]), queues them on
    /// RabbitMQ with hold music and position announcements, and rings the
    /// assigned agent's phone ([voice.agents]) to connect the call.
    Voice,
    /// Run the walk-in desk adapter alone.
    ///
    /// Serves the kiosk and display-board HTTP API ([desk] listen,
    /// 127.0.0.1:8090 by default; boards at /sites/<site>/board) for the
    /// [[desk.sites]]: tickets numbered per service each day in the site's time
    /// zone, routed to the counters of agents who opened one (DeskService),
    /// recalls, no-shows, transfers and booked appointments.
    Desk,
    /// Apply every service's database migrations, then exit.
    Migrate,
    /// Say what the configuration sends where and what is missing: each
    /// adapter's queues against the queues routing defines (work for an
    /// undefined queue is not routed: it is held until the queue is defined),
    /// and, on RabbitMQ, the dead letters waiting per service. Exit 1 when
    /// something needs attention. Reads the store and the broker directly.
    Check,
    /// Show a running Centralino's queues (waiting, longest wait, service
    /// level) and agents by state, as tables.
    Status {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Routing's queues of a running Centralino.
    Queues {
        #[command(subcommand)]
        action: ListAction,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Routing's agents of a running Centralino.
    Agents {
        #[command(subcommand)]
        action: ListAction,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Routing's skills of a running Centralino.
    Skills {
        #[command(subcommand)]
        action: ListAction,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Messages a service could not process (its dead-letter queue), and
    /// sending them back once the cause is fixed.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Check that a running Centralino answers its gRPC health check (for container
    /// healthchecks): exit 0 when SERVING, 1 otherwise.
    Health {
        /// gRPC address of the process.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        addr: String,
        /// Service to ask about; empty means the whole server.
        #[arg(long, default_value = "")]
        service: String,
    },
    /// People who log in to the browser application (agent desktop,
    /// wallboard, admin), kept in the store. Passwords are read from
    /// standard input (one line), never from the command line.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Mint a bearer token for development and integration tests.
    Token {
        /// agent, supervisor, integrator or admin.
        #[arg(long, short)]
        role: String,
        /// Who the token is for (a user, an agent id, an integration).
        #[arg(long, short)]
        subject: String,
        /// Lifetime, like 30m, 8h or 7d.
        #[arg(long, default_value = "8h")]
        ttl: String,
    },
}

/// Where a running Centralino answers, and the token to ask with.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// gRPC address of the running process (`http://host:port` or
    /// `host:port`). Default: where this machine's configuration
    /// (grpc.listen) says it listens, 127.0.0.1:50051 unless changed.
    #[arg(long, global = true, env = "CENTRALINO_ADDR")]
    pub addr: Option<String>,
    /// Bearer token (supervisor or admin). Default: one minted from this
    /// machine's key (auth.secret, or the data directory's), which is the
    /// key of a Centralino running here.
    #[arg(long, global = true, env = "CENTRALINO_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// For an `https://` address: the PEM certificate (or its CA) to trust.
    /// Default: this machine's grpc.tls_cert, the certificate a Centralino
    /// running here presents.
    #[arg(long, global = true, env = "CENTRALINO_CA")]
    pub ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum UserAction {
    /// Add a user: `echo 'their password' | centralino user add anna --role agent`.
    /// An agent's user name is their routing agent's name.
    Add {
        /// 1 to 64 of a-z 0-9 . _ -
        name: String,
        /// agent, supervisor, integrator or admin.
        #[arg(long, short)]
        role: String,
        /// The name shown in the application (default: the user name).
        #[arg(long, default_value = "")]
        display_name: String,
        /// it or en.
        #[arg(long, default_value = "it")]
        language: String,
    },
    /// Set a user's password (from standard input) and end their sessions.
    Passwd { name: String },
    /// Disable a user: their sessions end at once and they cannot log in.
    Disable { name: String },
    /// Enable a user again (also lifts a lockout after bad passwords).
    Enable { name: String },
    /// List the users.
    List,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ListAction {
    /// List them, one per line.
    List,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DeadLetterAction {
    /// List the dead letters of one service's queue, or of every service's.
    List {
        /// A service's consumer queue (routing, history, email-commands, …).
        #[arg(long)]
        queue: Option<String>,
    },
    /// Send a queue's dead letters back to it, oldest first.
    Replay {
        #[arg(long)]
        queue: String,
        /// At most this many (1 to 10000).
        #[arg(long, default_value_t = 1000)]
        max: u32,
    },
}

/// Parses `30s`, `15m`, `8h`, `7d` into seconds.
pub fn parse_ttl(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("30s"), Some(30));
        assert_eq!(parse_ttl("8h"), Some(28_800));
        assert_eq!(parse_ttl("7d"), Some(604_800));
        for bad in ["", "h", "10", "5w", "0h", "-1h"] {
            assert_eq!(parse_ttl(bad), None, "{bad}");
        }
    }
}
