//! Twilio-style webhooks: `POST {path}/inbound` (a customer's message) and
//! `POST {path}/status` (a status callback for a message we sent), as
//! `application/x-www-form-urlencoded`. Every request must carry a valid
//! `X-Twilio-Signature` for the public URL the provider called; anything else
//! is refused with 403 and a log line without personal data. A request is
//! answered 200 only once the adapter has handled what it carries, 503
//! otherwise (the provider retries; the adapter de-duplicates on `MessageSid`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::{mpsc, oneshot};

use crate::{Delivered, Incoming};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The URL the provider calls, up to and without the path: what the
    /// signature is computed over (e.g. `https://sms.example.com`). Behind a
    /// proxy this is the public address, not the listening one.
    pub public_base_url: String,
    /// Path prefix of the two endpoints (e.g. `/sms/twilio`).
    pub path: String,
    /// The account's auth token (the HMAC key).
    pub auth_token: String,
}

struct Shared {
    config: WebhookConfig,
    incoming: mpsc::Sender<Incoming>,
}

/// The webhook endpoints; serve them with `axum::serve`.
pub fn router(config: WebhookConfig, incoming: mpsc::Sender<Incoming>) -> axum::Router {
    let path = config.path.trim_end_matches('/').to_owned();
    let shared = Arc::new(Shared { config, incoming });
    axum::Router::new()
        .route(&format!("{path}/inbound"), post(inbound))
        .route(&format!("{path}/status"), post(status))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

async fn inbound(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match verified(&shared.config, "inbound", &headers, &body) {
        Ok(p) => p,
        Err(refusal) => return refusal.into_response(),
    };
    let field = |name: &str| field(&params, name);
    let (Some(id), Some(from), Some(to)) = (field("MessageSid"), field("From"), field("To")) else {
        return (
            StatusCode::BAD_REQUEST,
            "MessageSid, From and To are required",
        )
            .into_response();
    };
    if id.is_empty() || id.len() > 64 || from.len() > 32 || to.len() > 32 {
        return (
            StatusCode::BAD_REQUEST,
            "MessageSid, From or To is malformed",
        )
            .into_response();
    }
    let text = field("Body").unwrap_or_default();
    if text.chars().count() > 10_000 {
        return (StatusCode::PAYLOAD_TOO_LARGE, "Body is too long").into_response();
    }
    handle(
        &shared,
        Delivered::Message {
            id: Some(id),
            from,
            to,
            text,
        },
    )
    .await
}

async fn status(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match verified(&shared.config, "status", &headers, &body) {
        Ok(p) => p,
        Err(refusal) => return refusal.into_response(),
    };
    let field = |name: &str| field(&params, name);
    let (Some(id), Some(provider_status)) = (field("MessageSid"), field("MessageStatus")) else {
        return (
            StatusCode::BAD_REQUEST,
            "MessageSid and MessageStatus are required",
        )
            .into_response();
    };
    // Twilio's statuses, as history records them.
    let status = match provider_status.as_str() {
        "accepted" | "queued" | "sending" | "scheduled" => "queued",
        "sent" => "sent",
        "delivered" | "read" => "delivered",
        "failed" | "undelivered" | "canceled" => "failed",
        // Unknown news: acknowledge, record nothing.
        _ => return StatusCode::OK.into_response(),
    };
    handle(
        &shared,
        Delivered::Status {
            id,
            status: status.into(),
            error: field("ErrorCode")
                .unwrap_or_default()
                .chars()
                .take(32)
                .collect(),
        },
    )
    .await
}

/// The value of parameter `name`, if sent.
fn field(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The request's parameters if its signature is right; otherwise the refusal.
fn verified(
    config: &WebhookConfig,
    endpoint: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, (StatusCode, &'static str)> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-www-form-urlencoded",
        ));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let claimed = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let url = format!(
        "{}{}/{endpoint}",
        config.public_base_url.trim_end_matches('/'),
        config.path.trim_end_matches('/')
    );
    if centralino_gsm::twilio::verify(config.auth_token.as_bytes(), &url, &params, claimed) {
        Ok(params)
    } else {
        tracing::warn!(
            endpoint,
            signed = !claimed.is_empty(),
            "sms: webhook refused: bad signature"
        );
        Err((StatusCode::FORBIDDEN, "bad signature"))
    }
}

async fn handle(shared: &Shared, what: Delivered) -> Response {
    let (handled, answer) = oneshot::channel();
    if shared
        .incoming
        .send(Incoming { what, handled })
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    match answer.await {
        // An empty TwiML answer: nothing more to do.
        Ok(true) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        )
            .into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "not stored; retry later").into_response(),
    }
}
