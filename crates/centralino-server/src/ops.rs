//! `centralino.v1.OpsService`: identity, process info, dead letters.

use std::sync::Arc;

use centralino_auth::{Access, Policy, Role};
use centralino_bus::Bus;
use centralino_proto::v1::ops_service_server::{OpsService, OpsServiceServer};
use centralino_proto::v1::{
    DeadLetter, GetInfoRequest, GetInfoResponse, ListDeadLettersRequest, ListDeadLettersResponse,
    ReplayDeadLettersRequest, ReplayDeadLettersResponse, WhoAmIRequest, WhoAmIResponse,
};
use tonic::{Request, Response, Status};

use crate::ApiError;

const SERVICE: &str = "/centralino.v1.OpsService/";

/// Access rules of the Ops API.
pub fn ops_policy(policy: &mut Policy) {
    policy
        .set(&format!("{SERVICE}WhoAmI"), Access::Authenticated)
        .set(
            &format!("{SERVICE}GetInfo"),
            Access::Roles(vec![Role::Supervisor, Role::Admin]),
        )
        .set(
            &format!("{SERVICE}ListDeadLetters"),
            Access::Roles(vec![Role::Admin]),
        )
        .set(
            &format!("{SERVICE}ReplayDeadLetters"),
            Access::Roles(vec![Role::Admin]),
        );
}

/// What this process runs, for `GetInfo`.
#[derive(Debug, Clone, Default)]
pub struct ProcessInfo {
    pub version: String,
    pub services: Vec<String>,
    pub store: String,
}

/// The Ops API over a bus.
pub struct OpsApi {
    bus: Arc<dyn Bus>,
    info: ProcessInfo,
}

impl OpsApi {
    pub fn new(bus: Arc<dyn Bus>, info: ProcessInfo) -> Self {
        Self { bus, info }
    }

    /// The generated server with `max_message_bytes` limits both ways.
    pub fn into_server(self, max_message_bytes: usize) -> OpsServiceServer<Self> {
        OpsServiceServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    }
}

/// A role as the API spells it.
pub fn role_to_proto(role: Role) -> centralino_proto::v1::Role {
    use centralino_proto::v1::Role as P;
    match role {
        Role::Agent => P::Agent,
        Role::Supervisor => P::Supervisor,
        Role::Integrator => P::Integrator,
        Role::Admin => P::Admin,
        Role::Kiosk => P::Kiosk,
    }
}

fn consumer_name(queue: &str) -> Result<&str, ApiError> {
    let q = queue.trim();
    if q.is_empty() {
        return Err(ApiError::invalid("queue", "is required"));
    }
    if q.len() > 64
        || !q
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::invalid(
            "queue",
            "use 1 to 64 letters, digits, '-' or '_'",
        ));
    }
    Ok(q)
}

#[tonic::async_trait]
impl OpsService for OpsApi {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let claims = crate::claims(&request)?;
        Ok(Response::new(WhoAmIResponse {
            subject: claims.sub.clone(),
            role: role_to_proto(claims.role).into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: claims.exp,
                nanos: 0,
            }),
        }))
    }

    async fn get_info(
        &self,
        _request: Request<GetInfoRequest>,
    ) -> Result<Response<GetInfoResponse>, Status> {
        Ok(Response::new(GetInfoResponse {
            version: self.info.version.clone(),
            services: self.info.services.clone(),
            bus: self.bus.kind().to_owned(),
            store: self.info.store.clone(),
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let req = request.into_inner();
        let queue = consumer_name(&req.queue)?;
        let limit = match req.limit {
            0 => 20,
            1..=100 => req.limit,
            _ => return Err(ApiError::invalid("limit", "must be between 1 and 100").into()),
        };
        let dead = self
            .bus
            .dead_letters(queue, limit as usize)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListDeadLettersResponse {
            dead_letters: dead
                .into_iter()
                .map(|d| DeadLetter {
                    message_id: d.envelope.message_id,
                    event_type: d.envelope.event_type,
                    routing_key: d.routing_key,
                    occurred_at: d.envelope.occurred_at,
                    delivery_count: d.delivery_count,
                })
                .collect(),
        }))
    }

    async fn replay_dead_letters(
        &self,
        request: Request<ReplayDeadLettersRequest>,
    ) -> Result<Response<ReplayDeadLettersResponse>, Status> {
        let req = request.into_inner();
        let queue = consumer_name(&req.queue)?;
        if !(1..=10_000).contains(&req.max) {
            return Err(ApiError::invalid("max", "must be between 1 and 10000").into());
        }
        let n = self
            .bus
            .replay_dead_letters(queue, req.max as usize)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(queue, replayed = n, "dead letters replayed");
        Ok(Response::new(ReplayDeadLettersResponse {
            replayed: u32::try_from(n).unwrap_or(u32::MAX),
        }))
    }
}
