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
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            service_name: "centralino".into(),
            format: LogFormat::Human,
            filter: "info".into(),
            otlp_endpoint: None,
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

// Internal crates log at the configured level; noisy dependencies stay at warn.
const QUIET: &[&str] = &[
    "sqlx=warn",
    "sea_orm=warn",
    "lapin=warn",
    "h2=warn",
    "hyper=warn",
    "tower=warn",
];

/// Installs the global subscriber. Must be called inside a tokio runtime when an
/// OTLP endpoint is set (the batch exporter runs on it).
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut filter = EnvFilter::try_new(&config.filter)
        .map_err(|_| TelemetryError::Filter(config.filter.clone()))?;
    for q in QUIET {
        if !config
            .filter
            .contains(q.split('=').next().unwrap_or_default())
            && let Ok(d) = q.parse()
        {
            filter = filter.add_directive(d);
        }
    }

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
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
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
