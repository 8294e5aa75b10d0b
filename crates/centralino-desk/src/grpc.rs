//! `centralino.v1.DeskService`: counters for agents, tickets and appointments
//! for integrators. Every call goes through the actor.

use centralino_auth::{Access, Policy, Role};
use centralino_proto::v1;
use centralino_proto::v1::desk_service_server::{DeskService, DeskServiceServer};
use centralino_server::{ApiError, claims};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::command::{Booking, Command, CounterAction, Identifiers, ask};
use crate::view::TicketView;

pub type DeskServer = DeskServiceServer<DeskApi>;

/// Agents run counters; every role may read a ticket, issue one or check in;
/// every role but kiosk may book.
pub fn policy(policy: &mut Policy) {
    let agents = || Access::Roles(vec![Role::Agent]);
    for m in [
        "OpenCounter",
        "CloseCounter",
        "Recall",
        "NoShow",
        "StartService",
    ] {
        policy.set(&format!("/centralino.v1.DeskService/{m}"), agents());
    }
    // What a kiosk does, any role may; booking is for people and integrations.
    for m in ["GetTicket", "IssueTicket", "CheckIn"] {
        policy.set(
            &format!("/centralino.v1.DeskService/{m}"),
            Access::Roles(Role::ALL.to_vec()),
        );
    }
    policy.set(
        "/centralino.v1.DeskService/BookAppointment",
        Access::Roles(
            Role::ALL
                .into_iter()
                .filter(|r| *r != Role::Kiosk)
                .collect(),
        ),
    );
}

pub(crate) fn server(tx: mpsc::Sender<Command>, max: usize) -> DeskServer {
    DeskServiceServer::new(DeskApi { tx })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max)
}

#[derive(Clone)]
pub struct DeskApi {
    tx: mpsc::Sender<Command>,
}

fn agent<T>(r: &Request<T>) -> Result<String, Status> {
    Ok(claims(r)?.sub.clone())
}

fn proto(t: TicketView) -> v1::DeskTicket {
    let issued_at = chrono::DateTime::parse_from_rfc3339(&t.issued_at)
        .ok()
        .map(|d| centralino_proto::timestamp_from_chrono(d.to_utc()));
    v1::DeskTicket {
        interaction_id: t.id,
        site: t.site,
        service: t.service,
        label: t.label,
        state: t.state,
        counter: t.counter.unwrap_or_default(),
        recalls: t.recalls,
        position: t.position,
        estimated_wait_ms: t.estimated_wait_secs.map(|s| s.saturating_mul(1_000)),
        issued_at,
        disposition: t.disposition,
    }
}

fn some(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

fn millis(t: Option<&prost_types::Timestamp>, field: &'static str) -> Result<i64, ApiError> {
    let t = t.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    centralino_proto::timestamp_to_chrono(t, field)
        .map(|d| d.timestamp_millis())
        .map_err(ApiError::from)
}

impl DeskApi {
    async fn counter(
        &self,
        r: Request<v1::TicketRequest>,
        action: CounterAction,
    ) -> Result<Response<v1::DeskTicket>, Status> {
        let agent = agent(&r)?;
        let id = r.into_inner().interaction_id;
        let t = ask(&self.tx, |reply| Command::Counter {
            agent,
            id,
            action,
            reply,
        })
        .await?;
        Ok(Response::new(proto(t)))
    }
}

#[tonic::async_trait]
impl DeskService for DeskApi {
    async fn open_counter(
        &self,
        r: Request<v1::OpenCounterRequest>,
    ) -> Result<Response<v1::CounterInfo>, Status> {
        let agent = agent(&r)?;
        let v1::OpenCounterRequest { site, counter } = r.into_inner();
        let info = ask(&self.tx, |reply| Command::OpenCounter {
            agent,
            site,
            counter,
            reply,
        })
        .await?;
        Ok(Response::new(info))
    }

    async fn close_counter(
        &self,
        r: Request<v1::CloseCounterRequest>,
    ) -> Result<Response<v1::CounterInfo>, Status> {
        let agent = agent(&r)?;
        let info = ask(&self.tx, |reply| Command::CloseCounter { agent, reply }).await?;
        Ok(Response::new(info))
    }

    async fn recall(
        &self,
        r: Request<v1::TicketRequest>,
    ) -> Result<Response<v1::DeskTicket>, Status> {
        self.counter(r, CounterAction::Recall).await
    }

    async fn no_show(
        &self,
        r: Request<v1::TicketRequest>,
    ) -> Result<Response<v1::DeskTicket>, Status> {
        self.counter(r, CounterAction::NoShow).await
    }

    async fn start_service(
        &self,
        r: Request<v1::TicketRequest>,
    ) -> Result<Response<v1::DeskTicket>, Status> {
        self.counter(r, CounterAction::Start).await
    }

    async fn get_ticket(
        &self,
        r: Request<v1::TicketRequest>,
    ) -> Result<Response<v1::DeskTicket>, Status> {
        let id = r.into_inner().interaction_id;
        let t = ask(&self.tx, |reply| Command::Get { id, reply }).await?;
        Ok(Response::new(proto(t)))
    }

    async fn issue_ticket(
        &self,
        r: Request<v1::IssueTicketRequest>,
    ) -> Result<Response<v1::DeskTicket>, Status> {
        let v1::IssueTicketRequest {
            site,
            service,
            phone,
            codice_fiscale,
            loyalty_card,
        } = r.into_inner();
        let t = ask(&self.tx, |reply| Command::Issue {
            site,
            service,
            who: Identifiers {
                phone: some(phone),
                codice_fiscale: some(codice_fiscale),
                loyalty_card: some(loyalty_card),
            },
            reply,
        })
        .await?;
        Ok(Response::new(proto(t)))
    }

    async fn book_appointment(
        &self,
        r: Request<v1::BookAppointmentRequest>,
    ) -> Result<Response<v1::Appointment>, Status> {
        let b = r.into_inner();
        let booking = Booking {
            starts_at: millis(b.starts_at.as_ref(), "starts_at")?,
            ends_at: millis(b.ends_at.as_ref(), "ends_at")?,
            site: b.site,
            service: b.service,
            who: Identifiers {
                phone: some(b.phone),
                codice_fiscale: some(b.codice_fiscale),
                loyalty_card: some(b.loyalty_card),
            },
        };
        let a = ask(&self.tx, |reply| Command::Book { booking, reply }).await?;
        Ok(Response::new(a))
    }

    async fn check_in(
        &self,
        r: Request<v1::CheckInRequest>,
    ) -> Result<Response<v1::DeskTicket>, Status> {
        let v1::CheckInRequest { site, code } = r.into_inner();
        let t = ask(&self.tx, |reply| Command::CheckIn { site, code, reply }).await?;
        Ok(Response::new(proto(t)))
    }
}
