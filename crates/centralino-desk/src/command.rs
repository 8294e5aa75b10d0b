//! What the actor is asked to do ([`Command`]) and the two ways in: [`ask`]
//! for the HTTP and gRPC APIs, which wait for the answer, and
//! [`RoutingEvents`] for routing's events from the bus, done once the change
//! is committed.

use std::collections::HashMap;

use centralino_bus::{Delivery, EnvelopeExt as _, Handled, Handler, TypedPayload as _};
use centralino_proto::v1;
use centralino_server::ApiError;
use centralino_store::StoreError;
use tokio::sync::{mpsc, oneshot};

use crate::view::TicketView;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// The customer's identifiers as a kiosk or integrator gives them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Identifiers {
    pub phone: Option<String>,
    pub codice_fiscale: Option<String>,
    pub loyalty_card: Option<String>,
}

/// What a counter does to its called ticket.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CounterAction {
    Recall,
    NoShow,
    Start,
}

pub(crate) struct Booking {
    pub site: String,
    pub service: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub who: Identifiers,
}

pub(crate) enum Command {
    Issue {
        site: String,
        service: String,
        who: Identifiers,
        reply: Reply<TicketView>,
    },
    CheckIn {
        site: String,
        code: String,
        reply: Reply<TicketView>,
    },
    Book {
        booking: Booking,
        reply: Reply<v1::Appointment>,
    },
    OpenCounter {
        agent: String,
        site: String,
        counter: String,
        reply: Reply<v1::CounterInfo>,
    },
    CloseCounter {
        agent: String,
        reply: Reply<v1::CounterInfo>,
    },
    Counter {
        agent: String,
        id: String,
        action: CounterAction,
        reply: Reply<TicketView>,
    },
    Get {
        id: String,
        reply: Reply<TicketView>,
    },
    Waiting {
        site: String,
        reply: Reply<HashMap<String, u64>>,
    },
    Routing {
        event: v1::RoutingEvent,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Sends `make`'s command and waits for the answer.
pub(crate) async fn ask<T>(
    tx: &mpsc::Sender<Command>,
    make: impl FnOnce(Reply<T>) -> Command,
) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    tx.send(make(reply))
        .await
        .map_err(|_| ApiError::Unavailable("the desk adapter".into()))?;
    answer
        .await
        .map_err(|_| ApiError::Unavailable("the desk adapter".into()))?
}

/// Routing's events about desk interactions, handed to the actor through the
/// shared pipeline; done once the change is committed. While the database is
/// away an event is held and tried again (not nacked toward the delivery
/// limit).
pub(crate) struct RoutingEvents {
    pub tx: mpsc::Sender<Command>,
}

#[async_trait::async_trait]
impl Handler for RoutingEvents {
    type Input = v1::RoutingEvent;

    fn parse(&self, delivery: &Delivery) -> Result<Option<v1::RoutingEvent>, String> {
        let env = &delivery.envelope;
        if env.event_type != v1::RoutingEvent::TYPE_NAME {
            return Ok(None);
        }
        env.decode().map(Some).map_err(|e| e.to_string())
    }

    async fn handle(&self, event: v1::RoutingEvent, _: &Delivery) -> Handled {
        let (reply, answer) = oneshot::channel();
        if self
            .tx
            .send(Command::Routing { event, reply })
            .await
            .is_err()
        {
            return Handled::Hold("the desk actor is stopping".into());
        }
        match answer.await {
            Ok(Ok(())) => Handled::Done,
            Ok(Err(e)) if e.is_transient() => Handled::Hold(e.to_string()),
            Ok(Err(e)) => Handled::Retry(e.to_string()),
            Err(_) => Handled::Hold("the desk actor is stopping".into()),
        }
    }
}
