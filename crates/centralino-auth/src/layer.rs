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

/// Wraps a service with token and role checks.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    key: Arc<TokenKey>,
    policy: Arc<Policy>,
}

impl AuthLayer {
    pub fn new(key: TokenKey, policy: Policy) -> Self {
        Self {
            key: Arc::new(key),
            policy: Arc::new(policy),
        }
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
        if let Access::Roles(roles) = access
            && !roles.contains(&claims.role)
        {
            return Err(tonic::Status::permission_denied(format!(
                "role {} may not call {path}",
                claims.role
            )));
        }
        Ok(Some(claims))
    }
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

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let auth = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match self.layer.check(req.uri().path(), auth) {
            Ok(claims) => {
                if let Some(c) = claims {
                    req.extensions_mut().insert(c);
                }
                // Take the service that was driven to readiness, leave a fresh clone.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(req).await })
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
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
