//! Telemetry for Centralino processes: `tracing` logs in human or JSON form, and
//! OpenTelemetry traces exported over OTLP/gRPC when an endpoint is configured.
//!
//! The W3C trace-context propagator is always installed, so bus envelopes carry
//! `traceparent` and one trace follows an interaction across services. A missing
//! or unreachable collector never stops startup: spans are batched and dropped
//! with a warning when they cannot be sent.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Compact lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Telemetry settings, filled in by `main` from config and environment.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub service_name: String,
    pub format: LogFormat,
    /// `tracing` filter directives, e.g. `info,centralino=debug`.
    pub filter: String,
    /// OTLP/gRPC endpoint (`http://collector:4317`); `None` disables export.
    pub otlp_endpoint: Option<String>,
    /// Colour codes in human logs: only when they go to a terminal (`main`
    /// decides, from the output and `NO_COLOR`).
    pub ansi: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            service_name: "centralino".into(),
            format: LogFormat::Human,
            filter: "info".into(),
            otlp_endpoint: None,
            ansi: false,
        }
    }
}

/// Flushes and shuts down the trace exporter when dropped.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {0:?}")]
    Filter(String),
    #[error("a global subscriber is already installed")]
    AlreadyInstalled,
}

/// The filter actually installed for `configured`: a bare level (`info`,
/// `debug`) applies to our own crates (`centralino*`) only, and every other
/// crate logs at warn (or at the bare level when that is quieter), so a
/// dependency that logs what it handles (rsipstack's raw SIP messages, with
/// callers' numbers; sqlx's statements) stays out of the log unless a
/// directive names it (`info,rsipstack=debug`). Directives naming a target are
/// kept as written.
pub fn effective_filter(configured: &str) -> String {
    let mut ours: Option<&str> = None;
    let mut named = Vec::new();
    for d in configured
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        if d.contains('=') || d.contains('[') || d.contains('{') {
            named.push(d);
        } else if is_level(d) {
            ours = Some(d);
        } else {
            // A bare target (`rsipstack`) means that target at trace, as in
            // `EnvFilter`: kept as written.
            named.push(d);
        }
    }
    let ours = ours.unwrap_or("info");
    // Dependencies whose failures our code reports itself, with the peer and
    // what happens next: their own lines (rusmppc's bare `err=Io(…)`) only
    // when a directive names them.
    let covered = COVERED
        .iter()
        .filter(|c| !named.iter().any(|n| n.starts_with(*c)))
        .map(|c| format!("{c}=off"));
    let others = if level_rank(ours) < level_rank("warn") {
        ours
    } else {
        "warn"
    };
    let mut out = vec![others.to_owned(), format!("centralino={ours}")];
    out.extend(covered);
    out.extend(named.into_iter().map(str::to_owned));
    out.join(",")
}

/// See [`effective_filter`].
const COVERED: &[&str] = &["rusmppc"];

fn is_level(d: &str) -> bool {
    level_rank(d) != usize::MAX
}

/// Verbosity of a level name: off 0 … trace 5; not a level: `usize::MAX`.
fn level_rank(d: &str) -> usize {
    match d.to_ascii_lowercase().as_str() {
        "off" => 0,
        "error" => 1,
        "warn" => 2,
        "info" => 3,
        "debug" => 4,
        "trace" => 5,
        _ => usize::MAX,
    }
}

/// Installs the global subscriber. Must be called inside a tokio runtime when an
/// OTLP endpoint is set (the batch exporter runs on it).
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(effective_filter(&config.filter))
        .map_err(|_| TelemetryError::Filter(config.filter.clone()))?;

    let (provider, otel_error) = match config.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        Some(endpoint) => match build_provider(&config.service_name, endpoint) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };
    let otel_layer = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(config.service_name.clone())));

    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let result = match config.format {
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_ansi(config.ansi)
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .flatten_event(true),
            )
            .try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)?;
    if let Some(e) = otel_error {
        tracing::warn!(error = %e, "opentelemetry export disabled");
    } else if let Some(endpoint) = &config.otlp_endpoint {
        tracing::info!(%endpoint, "exporting traces over otlp");
    }
    if let Some(p) = &provider {
        opentelemetry::global::set_tracer_provider(p.clone());
    }
    Ok(TelemetryGuard { provider })
}

fn build_provider(service: &str, endpoint: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Parses `human` or `json`.
pub fn parse_format(s: &str) -> Option<LogFormat> {
    match s.trim().to_ascii_lowercase().as_str() {
        "human" | "text" | "pretty" => Some(LogFormat::Human),
        "json" => Some(LogFormat::Json),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::effective_filter;

    #[test]
    fn a_bare_level_is_ours_and_every_dependency_stays_at_warn() {
        assert_eq!(effective_filter("info"), "warn,centralino=info,rusmppc=off");
        assert_eq!(effective_filter(""), "warn,centralino=info,rusmppc=off");
        assert_eq!(
            effective_filter("DEBUG"),
            "warn,centralino=DEBUG,rusmppc=off"
        );
        // Quieter than warn: everything at that level.
        assert_eq!(
            effective_filter("error"),
            "error,centralino=error,rusmppc=off"
        );
        // A dependency named is let through as asked.
        assert_eq!(
            effective_filter("debug, rsipstack=info,rusmppc=warn,centralino_sms=trace"),
            "warn,centralino=debug,rsipstack=info,rusmppc=warn,centralino_sms=trace"
        );
        for f in ["info", "trace,lapin=debug", "warn,sqlx"] {
            assert!(
                tracing_subscriber::EnvFilter::try_new(effective_filter(f)).is_ok(),
                "{f}"
            );
        }
    }
}
