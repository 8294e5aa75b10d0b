//! The HTTP/JSON API for kiosks and display boards, and the board page.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /api/sites/{site}` | the site: open now, hours, services and how many wait |
//! | `POST /api/sites/{site}/tickets` | take a ticket (`service`, optional `phone`, `codice_fiscale`, `loyalty_card`) |
//! | `POST /api/sites/{site}/check-in` | check a booked customer in (`code`) |
//! | `GET /api/tickets/{id}` | a ticket's state and place |
//! | `GET /api/sites/{site}/board` | the board as JSON |
//! | `GET /api/sites/{site}/board/events` | the board as server-sent events (`board`, a full snapshot each time) |
//! | `GET /sites/{site}/board` | the board page for a display |
//!
//! Taking a ticket and checking in need `Authorization: Bearer <token>` (role
//! kiosk, integrator or admin) when [`DeskConfig::kiosk_key`] is set; the rest is
//! open (a board shows numbers and counters, nothing personal).
//!
//! Errors are JSON `{"error": …, "field": …}` with the status of
//! [`centralino_server::ApiError`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use centralino_auth::verify_bearer;
use centralino_server::ApiError;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::command::{Command, Identifiers, ask};
use crate::view::{Board, ServiceWaiting, SiteInfo, TicketView};
use crate::{DeskConfig, KIOSK_ROLES};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TakeTicket {
    service: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    codice_fiscale: Option<String>,
    #[serde(default)]
    loyalty_card: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckIn {
    code: String,
}

/// An [`ApiError`] as JSON with its HTTP status.
pub(crate) struct HttpError(ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let ApiError::Internal(detail) = &self.0 {
            tracing::error!(detail = %detail, "desk: internal error");
        }
        let unauthenticated = matches!(self.0, ApiError::Unauthenticated(_));
        let body = match &self.0 {
            ApiError::InvalidArgument { field, reason } => {
                serde_json::json!({ "error": format!("{field}: {reason}"), "field": field })
            }
            e => serde_json::json!({ "error": e.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        if unauthenticated {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, HttpError> {
    b.map(|Json(t)| t)
        .map_err(|e| HttpError(ApiError::invalid("body", e.body_text())))
}

#[derive(Clone)]
struct App {
    tx: mpsc::Sender<Command>,
    cfg: Arc<DeskConfig>,
    boards: Arc<HashMap<String, watch::Receiver<Arc<Board>>>>,
}

impl App {
    /// Lets a kiosk write when it need not or does show a kiosk's token.
    fn kiosk(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        let Some(key) = &self.cfg.kiosk_key else {
            return Ok(());
        };
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let claims = verify_bearer(key, authorization)
            .map_err(|e| HttpError(ApiError::Unauthenticated(e.to_string())))?;
        if !KIOSK_ROLES.contains(&claims.role) {
            return Err(HttpError(ApiError::PermissionDenied(format!(
                "role {} may not take tickets: use a kiosk token (centralino token --role kiosk)",
                claims.role
            ))));
        }
        Ok(())
    }

    fn board(&self, site: &str) -> Result<watch::Receiver<Arc<Board>>, HttpError> {
        self.boards.get(site).cloned().ok_or_else(|| {
            HttpError(ApiError::NotFound(format!(
                "site `{}`",
                site.chars().take(64).collect::<String>()
            )))
        })
    }
}

pub(crate) fn router(
    tx: mpsc::Sender<Command>,
    cfg: Arc<DeskConfig>,
    boards: HashMap<String, watch::Receiver<Arc<Board>>>,
) -> axum::Router {
    axum::Router::new()
        .route("/api/sites/{site}", get(site_info))
        .route("/api/sites/{site}/tickets", post(take_ticket))
        .route("/api/sites/{site}/check-in", post(check_in))
        .route("/api/tickets/{id}", get(ticket))
        .route("/api/sites/{site}/board", get(board_json))
        .route("/api/sites/{site}/board/events", get(board_events))
        .route("/sites/{site}/board", get(board_page))
        .with_state(App {
            tx,
            cfg,
            boards: Arc::new(boards),
        })
}

async fn site_info(
    State(app): State<App>,
    Path(site): Path<String>,
) -> Result<Json<SiteInfo>, HttpError> {
    let s = app.cfg.sites.iter().find(|s| s.id == site).ok_or_else(|| {
        HttpError(ApiError::NotFound(format!(
            "site `{}`",
            site.chars().take(64).collect::<String>()
        )))
    })?;
    let waiting = ask(&app.tx, |reply| Command::Waiting {
        site: s.id.clone(),
        reply,
    })
    .await?;
    Ok(Json(SiteInfo {
        id: s.id.clone(),
        timezone: s.tz.name().to_owned(),
        open: s.is_open((app.cfg.clock)()),
        opens: s.opens.format("%H:%M").to_string(),
        closes: centralino_ticketing::numbering::format_closing_time(s.closes),
        services: app
            .cfg
            .services
            .iter()
            .map(|svc| ServiceWaiting {
                service: svc.code.clone(),
                name: svc.name.clone(),
                waiting: waiting.get(&svc.code).copied().unwrap_or(0),
            })
            .collect(),
    }))
}

async fn take_ticket(
    State(app): State<App>,
    Path(site): Path<String>,
    headers: HeaderMap,
    request: Result<Json<TakeTicket>, JsonRejection>,
) -> Result<(StatusCode, Json<TicketView>), HttpError> {
    app.kiosk(&headers)?;
    let r = body(request)?;
    let issued = ask(&app.tx, |reply| Command::Issue {
        site,
        service: r.service,
        who: Identifiers {
            phone: r.phone,
            codice_fiscale: r.codice_fiscale,
            loyalty_card: r.loyalty_card,
        },
        reply,
    })
    .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

async fn check_in(
    State(app): State<App>,
    Path(site): Path<String>,
    headers: HeaderMap,
    request: Result<Json<CheckIn>, JsonRejection>,
) -> Result<(StatusCode, Json<TicketView>), HttpError> {
    app.kiosk(&headers)?;
    let r = body(request)?;
    let issued = ask(&app.tx, |reply| Command::CheckIn {
        site,
        code: r.code,
        reply,
    })
    .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

async fn ticket(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<TicketView>, HttpError> {
    Ok(Json(
        ask(&app.tx, |reply| Command::Get { id, reply }).await?,
    ))
}

async fn board_json(
    State(app): State<App>,
    Path(site): Path<String>,
) -> Result<Json<Board>, HttpError> {
    let board = app.board(&site)?.borrow().clone();
    Ok(Json((*board).clone()))
}

/// The board now, then again each time it changes.
async fn board_events(
    State(app): State<App>,
    Path(site): Path<String>,
) -> Result<impl IntoResponse, HttpError> {
    let rx = app.board(&site)?;
    let stream = futures::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first {
            rx.changed().await.ok()?;
        }
        let board = rx.borrow_and_update().clone();
        let event = Event::default().event("board").json_data(&*board).ok()?;
        Some((Ok::<_, Infallible>(event), (rx, false)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn board_page(
    State(app): State<App>,
    Path(site): Path<String>,
) -> Result<Html<&'static str>, HttpError> {
    app.board(&site)?;
    Ok(Html(include_str!("board.html")))
}
