//! Serving gRPC: listener, auth layer, health, reflection, limits, TLS;
//! gRPC-web for browsers on the same port, and a fallback for everything
//! that is not a gRPC method (the browser application's files).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use centralino_auth::AuthLayer;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

/// Certificate and key (PEM files) for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Listener settings every gRPC server takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcSettings {
    pub listen: SocketAddr,
    /// Largest request or response message, in bytes.
    pub max_message_bytes: usize,
    /// Upper bound on any request's deadline; shorter client deadlines are honoured.
    pub request_timeout: Duration,
    pub tls: Option<TlsFiles>,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// A gRPC server being assembled: add services, then [`serve`](Self::serve).
pub struct GrpcServer {
    settings: GrpcSettings,
    auth: AuthLayer,
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    fallback: Option<axum::Router>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl GrpcServer {
    pub fn new(settings: GrpcSettings, auth: AuthLayer) -> Self {
        Self {
            settings,
            auth,
            routes: RoutesBuilder::default(),
            names: Vec::new(),
            fallback: None,
        }
    }

    pub fn settings(&self) -> &GrpcSettings {
        &self.settings
    }

    /// Answers every request that no service takes (plain HTTP: the browser
    /// application). Without one, such requests get gRPC `UNIMPLEMENTED`.
    pub fn fallback(&mut self, router: axum::Router) -> &mut Self {
        self.fallback = Some(router);
        self
    }

    /// Adds a generated service (already configured with its message-size
    /// limits), reachable by gRPC and by gRPC-web (browsers): native HTTP/2
    /// gRPC passes through the gRPC-web translation untouched.
    pub fn add<S>(&mut self, service: S) -> &mut Self
    where
        S: tower_service::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(tower_layer::Layer::layer(
            &tonic_web::GrpcWebLayer::new(),
            service,
        ));
        self
    }

    /// Names of the services added so far.
    pub fn service_names(&self) -> &[&'static str] {
        &self.names
    }

    /// Binds the listener (port 0 picks a free one) and returns the bound address and
    /// the future that serves until `shutdown` resolves.
    pub async fn bind(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<
        (
            SocketAddr,
            impl std::future::Future<Output = Result<(), ServeError>> + Send,
        ),
        ServeError,
    > {
        let listener = tokio::net::TcpListener::bind(self.settings.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: self.settings.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: self.settings.listen,
            source,
        })?;

        let (reporter, health) = tonic_health::server::health_reporter();
        for name in &self.names {
            reporter
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(centralino_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServeError::Tls(format!("reflection: {e}")))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(centralino_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| ServeError::Tls(format!("reflection: {e}")))?;

        let mut routes = self.routes;
        routes
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        // HTTP/1.1 too: browsers speak gRPC-web over it when there is no TLS.
        let mut builder = Server::builder()
            .accept_http1(true)
            .timeout(self.settings.request_timeout);
        if let Some(tls) = &self.settings.tls {
            let cert = std::fs::read(&tls.cert)
                .map_err(|e| ServeError::Tls(format!("{}: {e}", tls.cert.display())))?;
            let key = std::fs::read(&tls.key)
                .map_err(|e| ServeError::Tls(format!("{}: {e}", tls.key.display())))?;
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
                .map_err(|e| ServeError::Tls(e.to_string()))?;
        }
        // tonic ignores its own `tcp_nodelay` for a custom incoming stream: set it
        // here, or small writes (stream updates, unary answers) wait for delayed
        // ACKs (Nagle), adding up to tens of milliseconds.
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            |accepted| {
                accepted.inspect(|stream| {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                    notice_dead_peers(stream);
                })
            },
        );
        let mut routes = routes.routes();
        if let Some(fallback) = self.fallback {
            routes =
                tonic::service::Routes::from(routes.into_axum_router().fallback_service(fallback));
        }
        let router = builder.layer(self.auth).add_routes(routes);
        let fut = async move {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
                .map_err(ServeError::from)
        };
        Ok((addr, fut))
    }
}

/// The caller's verified claims (the auth layer put them on the request), or
/// `UNAUTHENTICATED` on a method served without a token.
pub fn claims<T>(request: &tonic::Request<T>) -> Result<&centralino_auth::Claims, crate::ApiError> {
    request
        .extensions()
        .get::<centralino_auth::Claims>()
        .ok_or_else(|| crate::ApiError::Unauthenticated("missing bearer token".into()))
}

/// What a long server stream re-checks now and then: the caller's token
/// expiry and, for a browser, that its session still lives (logout, a new
/// password or a disabled user end open streams too, not only new calls).
#[derive(Debug, Clone)]
pub struct StreamAuth {
    expires_at: i64,
    session: Option<centralino_auth::CookieSession>,
}

impl StreamAuth {
    /// From the request the stream answers.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Self, crate::ApiError> {
        Ok(Self {
            expires_at: claims(request)?.exp,
            session: request
                .extensions()
                .get::<centralino_auth::CookieSession>()
                .cloned(),
        })
    }

    /// `UNAUTHENTICATED` once the token expired or the session ended.
    pub async fn check(&self) -> Result<(), tonic::Status> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        // A store slow to answer must not hold up the stream: no answer in
        // time counts as "still live" (checked again at the next heartbeat).
        let ended = now >= self.expires_at
            || match &self.session {
                Some(s) => tokio::time::timeout(Duration::from_secs(2), s.ended())
                    .await
                    .unwrap_or(false),
                None => false,
            };
        if ended {
            Err(tonic::Status::unauthenticated(
                "session ended: log in again",
            ))
        } else {
            Ok(())
        }
    }
}

/// A peer that vanished (a laptop closed, a network gone) is noticed within
/// about a minute instead of the kernel's default of many: keepalive probes
/// on an idle connection, and a limit on how long sent data may go
/// unacknowledged (a stream's heartbeats). Its streams then end, and with a
/// desk's stream the agent's presence (after the grace).
fn notice_dead_peers(stream: &tokio::net::TcpStream) {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    if let Err(e) = socket.set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "TCP keepalive not set");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = socket.set_tcp_user_timeout(Some(Duration::from_secs(45))) {
        tracing::debug!(error = %e, "TCP_USER_TIMEOUT not set");
    }
}
