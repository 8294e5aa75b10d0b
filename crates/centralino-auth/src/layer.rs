//! The tower layer enforcing tokens and roles on gRPC requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{AuthError, Claims, Role, TokenKey};

/// Who may call a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health checks, reflection).
    Public,
    /// Any valid token.
    Authenticated,
    /// A valid token with one of these roles.
    Roles(Vec<Role>),
}

/// Per-method access rules. Keys are gRPC paths: a full method
/// (`/centralino.v1.OpsService/WhoAmI`) or a whole service (`/grpc.health.v1.Health/`).
/// A method with no rule needs an admin token: forgetting a rule fails closed.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: HashMap<String, Access>,
}

impl Default for Policy {
    /// Health and reflection are public; everything else needs a rule.
    fn default() -> Self {
        let mut p = Self {
            rules: HashMap::new(),
        };
        p.set("/grpc.health.v1.Health/", Access::Public);
        p.set("/grpc.reflection.v1.ServerReflection/", Access::Public);
        p.set("/grpc.reflection.v1alpha.ServerReflection/", Access::Public);
        p
    }
}

impl Policy {
    pub fn set(&mut self, path: &str, access: Access) -> &mut Self {
        self.rules.insert(path.to_owned(), access);
        self
    }

    pub fn access(&self, path: &str) -> Access {
        if let Some(a) = self.rules.get(path) {
            return a.clone();
        }
        if let Some((service, _)) = path.rsplit_once('/')
            && let Some(a) = self.rules.get(&format!("{service}/"))
        {
            return a.clone();
        }
        Access::Roles(vec![Role::Admin])
    }
}

/// The cookie a browser session travels in over plain HTTP on loopback.
pub const SESSION_COOKIE: &str = "centralino_session";
/// The cookie a browser session travels in over HTTPS: the `__Host-` prefix
/// makes the browser refuse it unless `Secure`, host-only and `Path=/`, so a
/// sibling subdomain cannot plant one.
pub const SECURE_SESSION_COOKIE: &str = "__Host-centralino_session";

/// Looks up a browser session (the value of [`SESSION_COOKIE`]): its claims
/// while it is live, an [`AuthError`] once it ended, was revoked or its user
/// was disabled. Implemented over the store by the web layer.
pub trait SessionResolver: Send + Sync + 'static {
    fn resolve<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Claims, AuthError>>;
}

/// The session a request was authenticated by (in the request extensions
/// beside its [`Claims`]): logging out ends it, and a long stream asks now
/// and then whether it still lives.
#[derive(Clone)]
pub struct CookieSession {
    token: String,
    sessions: Arc<dyn SessionResolver>,
}

impl std::fmt::Debug for CookieSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSession(..)")
    }
}

impl CookieSession {
    /// The cookie's token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether the session has ended (logged out, revoked, expired, its user
    /// disabled); `false` while it lives or cannot be checked now.
    pub async fn ended(&self) -> bool {
        matches!(
            self.sessions.resolve(&self.token).await,
            Err(e) if e != AuthError::SessionUnavailable
        )
    }
}

/// Wraps a service with token and role checks.
#[derive(Clone)]
pub struct AuthLayer {
    key: Arc<TokenKey>,
    policy: Arc<Policy>,
    sessions: Option<Arc<dyn SessionResolver>>,
    /// Origins (`scheme://host:port`) a browser may call from besides the
    /// server's own.
    origins: Arc<Vec<String>>,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("policy", &self.policy)
            .field("sessions", &self.sessions.is_some())
            .field("origins", &self.origins)
            .finish()
    }
}

impl AuthLayer {
    pub fn new(key: TokenKey, policy: Policy) -> Self {
        Self {
            key: Arc::new(key),
            policy: Arc::new(policy),
            sessions: None,
            origins: Arc::new(Vec::new()),
        }
    }

    /// Also accepts browser sessions (the [`SESSION_COOKIE`]), from this
    /// server's own origin or one of `origins`.
    pub fn with_sessions(
        mut self,
        sessions: Arc<dyn SessionResolver>,
        origins: Vec<String>,
    ) -> Self {
        self.sessions = Some(sessions);
        self.origins = Arc::new(origins);
        self
    }

    /// Decides a request from its path and `authorization` header value.
    pub fn check(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Claims>, tonic::Status> {
        let access = self.policy.access(path);
        if access == Access::Public {
            return Ok(None);
        }
        let claims = verify_bearer(&self.key, authorization)
            .map_err(|e| tonic::Status::unauthenticated(e.to_string()))?;
        allow(&access, path, claims).map(Some)
    }

    /// Decides a request that may come from a browser: an `Origin`, when
    /// sent, must name this server (`authority`) or a configured origin; a
    /// bearer token wins over a session cookie; a cookie is accepted only
    /// with an `Origin` (browsers always send one on a POST).
    async fn decide(&self, request: BrowserRequest<'_>) -> Result<Decision, tonic::Status> {
        if let Some(origin) = request.origin
            && !self.origin_allowed(origin, request.authority)
        {
            return Err(tonic::Status::permission_denied(
                "cross-origin request refused: open the application from this server's address",
            ));
        }
        let access = self.policy.access(request.path);
        if request.authorization.is_some() || request.cookie.is_none() {
            return self
                .check(request.path, request.authorization)
                .map(|claims| Decision {
                    claims,
                    session: None,
                });
        }
        let (Some(token), Some(sessions)) = (request.cookie, self.sessions.as_ref()) else {
            return self.check(request.path, None).map(|claims| Decision {
                claims,
                session: None,
            });
        };
        if request.origin.is_none() {
            return Err(tonic::Status::permission_denied(
                "a session cookie is accepted only with an Origin header",
            ));
        }
        let session = CookieSession {
            token: token.to_owned(),
            sessions: sessions.clone(),
        };
        if access == Access::Public {
            return Ok(Decision {
                claims: None,
                session: Some(session),
            });
        }
        let claims = sessions.resolve(token).await.map_err(|e| match e {
            // A database blip must not log everyone out.
            AuthError::SessionUnavailable => tonic::Status::unavailable(e.to_string()),
            e => tonic::Status::unauthenticated(e.to_string()),
        })?;
        Ok(Decision {
            claims: Some(allow(&access, request.path, claims)?),
            session: Some(session),
        })
    }

    fn origin_allowed(&self, origin: &str, authority: Option<&str>) -> bool {
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        matches!((host, authority), (Some(h), Some(a)) if !h.is_empty() && h.eq_ignore_ascii_case(a))
    }
}

fn allow(access: &Access, path: &str, claims: Claims) -> Result<Claims, tonic::Status> {
    if let Access::Roles(roles) = access
        && !roles.contains(&claims.role)
    {
        return Err(tonic::Status::permission_denied(format!(
            "role {} may not call {path}",
            claims.role
        )));
    }
    Ok(claims)
}

/// What a request carries that decides it.
struct BrowserRequest<'a> {
    path: &'a str,
    authorization: Option<&'a str>,
    cookie: Option<&'a str>,
    origin: Option<&'a str>,
    authority: Option<&'a str>,
}

struct Decision {
    claims: Option<Claims>,
    session: Option<CookieSession>,
}

/// Whether `path` names a gRPC method (`/package.Service/Method`): only
/// those are checked. Anything else (the browser application's files) is
/// public, and never reaches a gRPC service, whose names all have a dot.
pub fn is_grpc_path(path: &str) -> bool {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    matches!(
        (parts.next(), parts.next()),
        (Some(service), Some(method)) if service.contains('.') && !method.is_empty()
    )
}

/// The value of cookie `name` among the request's `cookie` headers (HTTP/2
/// may split cookies over several).
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The verified claims of an `authorization` header value (`Bearer <token>`),
/// checked against the clock now. For HTTP APIs outside the gRPC server.
pub fn verify_bearer(key: &TokenKey, authorization: Option<&str>) -> Result<Claims, AuthError> {
    let token = authorization
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(AuthError::Missing)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    key.verify(token, now)
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

/// A boxed future, as the layer and [`SessionResolver`] return.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl<S, B, RB> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // Take the service that was driven to readiness, leave a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !is_grpc_path(req.uri().path()) {
            return Box::pin(async move { inner.call(req).await });
        }
        let layer = self.layer.clone();
        let owned = |v: Option<&str>| v.map(str::to_owned);
        let headers = req.headers();
        let text = |name: http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let path = req.uri().path().to_owned();
        let authorization = owned(text(http::header::AUTHORIZATION));
        let session = owned(
            cookie(headers, SECURE_SESSION_COOKIE).or_else(|| cookie(headers, SESSION_COOKIE)),
        );
        let origin = owned(text(http::header::ORIGIN));
        let authority = owned(
            req.uri()
                .authority()
                .map(http::uri::Authority::as_str)
                .or_else(|| text(http::header::HOST)),
        );
        Box::pin(async move {
            let decided = layer
                .decide(BrowserRequest {
                    path: &path,
                    authorization: authorization.as_deref(),
                    cookie: session.as_deref(),
                    origin: origin.as_deref(),
                    authority: authority.as_deref(),
                })
                .await;
            match decided {
                Ok(decision) => {
                    if let Some(c) = decision.claims {
                        req.extensions_mut().insert(c);
                    }
                    if let Some(s) = decision.session {
                        req.extensions_mut().insert(s);
                    }
                    inner.call(req).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_falls_back_to_service_then_admin() {
        let mut p = Policy::default();
        p.set("/x.S/", Access::Authenticated);
        p.set("/x.S/Admin", Access::Roles(vec![Role::Admin]));
        assert_eq!(p.access("/x.S/Read"), Access::Authenticated);
        assert_eq!(p.access("/x.S/Admin"), Access::Roles(vec![Role::Admin]));
        assert_eq!(p.access("/grpc.health.v1.Health/Check"), Access::Public);
        assert_eq!(p.access("/y.Unknown/M"), Access::Roles(vec![Role::Admin]));
    }

    #[test]
    fn check_maps_to_grpc_codes() {
        let key = TokenKey::new(vec![1u8; 32]).expect("key");
        let mut p = Policy::default();
        p.set("/x.S/Agents", Access::Roles(vec![Role::Agent]));
        let layer = AuthLayer::new(key.clone(), p);
        let now = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after epoch")
                .as_secs(),
        )
        .expect("fits");
        let agent = key.mint("a", Role::Agent, now, 60).expect("mint");
        let admin = key.mint("b", Role::Admin, now, 60).expect("mint");
        assert_eq!(
            layer.check("/x.S/Agents", None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            layer
                .check("/x.S/Agents", Some("Bearer nonsense"))
                .unwrap_err()
                .code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            layer
                .check("/x.S/Agents", Some(&format!("Bearer {admin}")))
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
        let ok = layer
            .check("/x.S/Agents", Some(&format!("Bearer {agent}")))
            .expect("agent allowed");
        assert_eq!(ok.map(|c| c.sub), Some("a".to_owned()));
        assert!(layer.check("/grpc.health.v1.Health/Check", None).is_ok());
    }
}
