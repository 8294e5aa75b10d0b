//! `WebSessionService` (login with a cookie) and `UserAdminService`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use centralino_auth::{Access, CookieSession, Policy, Role, SECURE_SESSION_COOKIE, SESSION_COOKIE};
use centralino_proto::v1::user_admin_service_server::{UserAdminService, UserAdminServiceServer};
use centralino_proto::v1::web_session_service_server::{
    WebSessionService, WebSessionServiceServer,
};
use centralino_proto::v1::{
    CreateUserRequest, ListUsersRequest, ListUsersResponse, LoginReply, LoginRequest, LogoutReply,
    LogoutRequest, MeRequest, SetLanguageRequest, SetPasswordRequest, SetUserEnabledRequest, User,
};
use centralino_server::{ApiError, claims, role_to_proto};
use sea_orm::DatabaseConnection;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::throttle::AddressThrottle;
use crate::users::{NewUser, UserError, UserRecord, Users};
use crate::{SESSION_LIFETIME_MS, Sessions};

const SESSION_SERVICE: &str = "/centralino.v1.WebSessionService/";

/// Access rules: logging in and out is public, the rest needs a session
/// (`UserAdminService` stays admin-only, the default).
pub fn policy(policy: &mut Policy) {
    policy
        .set(&format!("{SESSION_SERVICE}Login"), Access::Public)
        .set(&format!("{SESSION_SERVICE}Logout"), Access::Public)
        .set(&format!("{SESSION_SERVICE}Me"), Access::Authenticated)
        .set(
            &format!("{SESSION_SERVICE}SetLanguage"),
            Access::Authenticated,
        );
}

/// How the server is reached, which decides the cookie and whose address a
/// login is counted under.
#[derive(Debug, Clone, Default)]
pub struct WebSettings {
    /// This server speaks TLS: every cookie is `Secure`.
    pub tls: bool,
    /// A TLS proxy in front (an `https://` origin configured): a browser
    /// calling from an `https://` origin gets a `Secure` cookie.
    pub https_proxy: bool,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

/// The web layer's gRPC services.
#[derive(Clone)]
pub struct WebApi {
    users: Users,
    sessions: Sessions,
    settings: WebSettings,
    throttle: Arc<Mutex<AddressThrottle>>,
}

impl WebApi {
    pub fn new(db: DatabaseConnection, settings: WebSettings) -> Self {
        Self {
            users: Users::new(db.clone()),
            sessions: Sessions::new(db),
            settings,
            throttle: Arc::default(),
        }
    }

    /// The session store, for the auth layer.
    pub fn sessions(&self) -> Sessions {
        self.sessions.clone()
    }

    pub fn session_server(&self, max: usize) -> WebSessionServiceServer<Self> {
        WebSessionServiceServer::new(self.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
    }

    pub fn user_admin_server(&self, max: usize) -> UserAdminServiceServer<Self> {
        UserAdminServiceServer::new(self.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
    }

    /// The `Set-Cookie` value for `token` (or clearing it): over HTTPS (this
    /// server's TLS, or a browser on an `https://` origin reaching it through
    /// a configured TLS proxy) the `__Host-` cookie, `Secure`; plain HTTP only
    /// on a loopback address, refused elsewhere (a session cookie would
    /// travel in clear).
    fn cookie(
        &self,
        local: Option<SocketAddr>,
        origin: Option<&str>,
        token: &str,
        max_age_s: i64,
    ) -> Result<String, ApiError> {
        let https = self.settings.tls
            || (self.settings.https_proxy && origin.is_some_and(|o| o.starts_with("https://")));
        if https {
            return Ok(format!(
                "{SECURE_SESSION_COOKIE}={token}; Path=/; Max-Age={max_age_s}; HttpOnly; \
                 SameSite=Strict; Secure"
            ));
        }
        if !local.is_some_and(|a| a.ip().is_loopback()) {
            return Err(ApiError::FailedPrecondition(
                "logging in from a browser needs HTTPS: set [grpc] tls_cert and tls_key, or list \
                 the https:// origin of the proxy in front in grpc.browser_origins; plain HTTP \
                 works on a loopback address only"
                    .into(),
            ));
        }
        Ok(format!(
            "{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict"
        ))
    }
}

fn role_from_proto(role: i32) -> Result<Role, ApiError> {
    use centralino_proto::v1::Role as P;
    match P::try_from(role) {
        Ok(P::Agent) => Ok(Role::Agent),
        Ok(P::Supervisor) => Ok(Role::Supervisor),
        Ok(P::Integrator) => Ok(Role::Integrator),
        Ok(P::Admin) => Ok(Role::Admin),
        Ok(P::Kiosk) => Ok(Role::Kiosk),
        _ => Err(ApiError::invalid(
            "role",
            "use agent, supervisor, integrator, admin or kiosk",
        )),
    }
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

fn user_to_proto(u: UserRecord, now: i64) -> User {
    User {
        name: u.name,
        display_name: u.display_name,
        role: role_to_proto(u.role).into(),
        enabled: u.enabled,
        language: u.language,
        locked_until: u.locked_until.filter(|t| *t > now).map(timestamp),
        created_at: Some(timestamp(u.created_at)),
    }
}

fn login_reply(u: &UserRecord, expires_at_ms: i64) -> LoginReply {
    LoginReply {
        user: u.name.clone(),
        display_name: u.display_name.clone(),
        role: role_to_proto(u.role).into(),
        language: u.language.clone(),
        expires_at: Some(timestamp(expires_at_ms)),
    }
}

fn api(e: UserError) -> Status {
    ApiError::from(e).into()
}

fn set_cookie<T>(mut response: Response<T>, cookie: &str) -> Result<Response<T>, Status> {
    let value = MetadataValue::try_from(cookie)
        .map_err(|e| ApiError::Internal(format!("cookie header: {e}")))?;
    response.metadata_mut().append("set-cookie", value);
    Ok(response)
}

#[tonic::async_trait]
impl WebSessionService for WebApi {
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginReply>, Status> {
        let local = request.local_addr();
        let now = crate::now_ms();
        if let Some(peer) = request.remote_addr() {
            let forwarded: Vec<&str> = request
                .metadata()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let client = crate::throttle::client_address(
                peer.ip(),
                &forwarded,
                &self.settings.trusted_proxies,
            );
            let over = self
                .throttle
                .lock()
                .map_err(|_| ApiError::Internal("login throttle poisoned".into()))?
                .attempt(client, now);
            if let Err(retry_at) = over {
                let secs = (retry_at - now).div_euclid(1000).max(1);
                return Err(ApiError::ResourceExhausted(format!(
                    "too many login attempts from this address: try again in {secs} s"
                ))
                .into());
            }
        }
        let origin = request
            .metadata()
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Refused before any password is checked when the cookie could not be set.
        self.cookie(local, origin.as_deref(), "", 0)?;
        let previous = request.extensions().get::<CookieSession>().cloned();
        let body = request.into_inner();
        let user = self
            .users
            .verify(body.user.trim(), &body.password, now)
            .await
            .map_err(|e| {
                if matches!(e, UserError::BadCredentials | UserError::Disabled) {
                    tracing::info!("login refused");
                }
                api(e)
            })?;
        // A login on a shared workstation ends whoever was logged in there
        // (only once this one succeeded: a mistyped password ends nothing).
        if let Some(previous) = previous {
            self.sessions
                .close(previous.token())
                .await
                .map_err(|e| ApiError::from(centralino_store::StoreError::from(e)))?;
        }
        let (token, expires_at) = self
            .sessions
            .open(&user.name, now)
            .await
            .map_err(|e| ApiError::from(centralino_store::StoreError::from(e)))?;
        tracing::info!(user = %user.name, "logged in");
        let cookie = self.cookie(local, origin.as_deref(), &token, SESSION_LIFETIME_MS / 1000)?;
        set_cookie(Response::new(login_reply(&user, expires_at)), &cookie)
    }

    async fn logout(
        &self,
        request: Request<LogoutRequest>,
    ) -> Result<Response<LogoutReply>, Status> {
        if let Some(session) = request.extensions().get::<CookieSession>() {
            self.sessions
                .close(session.token())
                .await
                .map_err(|e| ApiError::from(centralino_store::StoreError::from(e)))?;
        }
        let origin = request
            .metadata()
            .get("origin")
            .and_then(|v| v.to_str().ok());
        match self.cookie(request.local_addr(), origin, "", 0) {
            Ok(clear) => set_cookie(Response::new(LogoutReply {}), &clear),
            Err(_) => Ok(Response::new(LogoutReply {})),
        }
    }

    async fn me(&self, request: Request<MeRequest>) -> Result<Response<LoginReply>, Status> {
        let c = claims(&request)?;
        match self.users.get(&c.sub).await {
            Ok(u) => Ok(Response::new(login_reply(&u, c.exp.saturating_mul(1000)))),
            // A token's subject need not be a user of the application.
            Err(UserError::NotFound(_)) => Ok(Response::new(LoginReply {
                user: c.sub.clone(),
                display_name: c.sub.clone(),
                role: role_to_proto(c.role).into(),
                language: "it".into(),
                expires_at: Some(timestamp(c.exp.saturating_mul(1000))),
            })),
            Err(e) => Err(api(e)),
        }
    }

    async fn set_language(
        &self,
        request: Request<SetLanguageRequest>,
    ) -> Result<Response<LoginReply>, Status> {
        let c = claims(&request)?.clone();
        let u = self
            .users
            .set_language(&c.sub, &request.get_ref().language)
            .await
            .map_err(api)?;
        Ok(Response::new(login_reply(&u, c.exp.saturating_mul(1000))))
    }
}

#[tonic::async_trait]
impl UserAdminService for WebApi {
    async fn list_users(
        &self,
        _request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let now = crate::now_ms();
        let users = self.users.list().await.map_err(api)?;
        Ok(Response::new(ListUsersResponse {
            users: users.into_iter().map(|u| user_to_proto(u, now)).collect(),
        }))
    }

    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<User>, Status> {
        let r = request.into_inner();
        let role = role_from_proto(r.role)?;
        let u = self
            .users
            .create(NewUser {
                name: r.name,
                display_name: r.display_name,
                role,
                password: r.password,
                language: r.language,
            })
            .await
            .map_err(api)?;
        Ok(Response::new(user_to_proto(u, crate::now_ms())))
    }

    async fn set_password(
        &self,
        request: Request<SetPasswordRequest>,
    ) -> Result<Response<User>, Status> {
        let r = request.into_inner();
        let u = self
            .users
            .set_password(&r.name, &r.password)
            .await
            .map_err(api)?;
        Ok(Response::new(user_to_proto(u, crate::now_ms())))
    }

    async fn set_user_enabled(
        &self,
        request: Request<SetUserEnabledRequest>,
    ) -> Result<Response<User>, Status> {
        let r = request.into_inner();
        let u = self
            .users
            .set_enabled(&r.name, r.enabled)
            .await
            .map_err(api)?;
        Ok(Response::new(user_to_proto(u, crate::now_ms())))
    }
}
