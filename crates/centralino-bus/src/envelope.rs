//! Building envelopes, with the producer's trace context.

use std::collections::HashMap;

use prost::Message;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::Envelope;

/// A protobuf payload that knows its fully qualified type name.
pub trait TypedPayload: Message + Default {
    const TYPE_NAME: &'static str;
}

macro_rules! typed {
    ($($ty:ident),* $(,)?) => {
        $(impl TypedPayload for centralino_proto::v1::$ty {
            const TYPE_NAME: &'static str = concat!("centralino.v1.", stringify!($ty));
        })*
    };
}

typed!(
    InteractionCreated,
    InteractionAbandoned,
    RoutingEvent,
    MessageRecorded,
    MessageStatusChanged,
    InteractionEnded,
    ConsentChanged,
    CustomerChanged,
    SendMessage,
    RecordConsentRequest,
    AgentNotReached,
    DeskTicketEvent,
    CommandRefused,
);

/// A new envelope around `payload`, produced by `source`, stamped now and with the
/// current span's W3C trace context.
pub fn new_envelope<P: TypedPayload>(source: &str, payload: &P) -> Envelope {
    let mut carrier: HashMap<String, String> = HashMap::new();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    Envelope {
        message_id: uuid::Uuid::now_v7().to_string(),
        event_type: P::TYPE_NAME.to_owned(),
        occurred_at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
        traceparent: carrier.remove("traceparent").unwrap_or_default(),
        tracestate: carrier.remove("tracestate").unwrap_or_default(),
        payload: payload.encode_to_vec(),
        source: source.to_owned(),
    }
}

/// The `MessageStatusChanged` an adapter reports for one of its messages
/// (`queued`, `sent`, `delivered`, `failed`), as (routing key, envelope):
/// `interaction.<channel>.message_status`. `error` is cut to 500 characters.
pub fn message_status(
    source: &str,
    channel: centralino_proto::v1::Channel,
    message_id: &str,
    interaction_id: &str,
    status: &str,
    error: &str,
) -> (crate::Key, Envelope) {
    let event = centralino_proto::v1::MessageStatusChanged {
        message_id: message_id.to_owned(),
        interaction_id: interaction_id.to_owned(),
        channel: channel as i32,
        status: status.to_owned(),
        error: error.chars().take(500).collect(),
        at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
    };
    (
        crate::keys::interaction(channel, crate::keys::Interaction::MessageStatus),
        new_envelope(source, &event),
    )
}

/// Routing key (events exchange) of a [`command_refused`] answer.
pub const COMMAND_REFUSED: &str = "command.refused";

/// The `CommandRefused` answering a command that was not carried out, as
/// (routing key, envelope): `command` is the command's routing key,
/// `command_message_id` its envelope's id, `request_id` its own id when
/// readable, `code` a gRPC status code name. `reason` is cut to 500
/// characters.
pub fn command_refused(
    source: &str,
    command: &str,
    command_message_id: &str,
    request_id: &str,
    code: &str,
    reason: &str,
) -> (crate::Key, Envelope) {
    let event = centralino_proto::v1::CommandRefused {
        command: command.to_owned(),
        command_message_id: command_message_id.to_owned(),
        request_id: request_id.to_owned(),
        code: code.to_owned(),
        reason: reason.chars().take(500).collect(),
    };
    (crate::keys::command_refused(), new_envelope(source, &event))
}

/// Why an envelope's payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("envelope holds {found}, not {expected}")]
    WrongType {
        found: String,
        expected: &'static str,
    },
    #[error("payload does not decode: {0}")]
    Payload(prost::DecodeError),
}

/// Reading an envelope back.
pub trait EnvelopeExt {
    /// Decodes the payload as `P`, checking the declared type first.
    fn decode<P: TypedPayload>(&self) -> Result<P, DecodeError>;
    /// Makes the producer's span the parent of `span`, so one trace follows the message.
    fn attach_trace(&self, span: &tracing::Span);
}

impl EnvelopeExt for Envelope {
    fn decode<P: TypedPayload>(&self) -> Result<P, DecodeError> {
        if self.event_type != P::TYPE_NAME {
            return Err(DecodeError::WrongType {
                found: self.event_type.clone(),
                expected: P::TYPE_NAME,
            });
        }
        P::decode(self.payload.as_slice()).map_err(DecodeError::Payload)
    }

    fn attach_trace(&self, span: &tracing::Span) {
        if self.traceparent.is_empty() {
            return;
        }
        let mut carrier = HashMap::new();
        carrier.insert("traceparent".to_owned(), self.traceparent.clone());
        if !self.tracestate.is_empty() {
            carrier.insert("tracestate".to_owned(), self.tracestate.clone());
        }
        let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
        // Fails only when no OpenTelemetry layer is installed; then there is nothing to link.
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use centralino_proto::v1::{InteractionAbandoned, InteractionCreated};

    #[test]
    fn trace_context_travels_in_the_envelope() {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let producer = tracing::info_span!("adapter");
            let envelope =
                producer.in_scope(|| new_envelope("sms", &InteractionCreated::default()));
            assert!(
                envelope.traceparent.starts_with("00-"),
                "{}",
                envelope.traceparent
            );
            let trace_id = envelope.traceparent[3..35].to_owned();
            assert_eq!(
                producer
                    .context()
                    .span()
                    .span_context()
                    .trace_id()
                    .to_string(),
                trace_id
            );

            let consumer = tracing::info_span!("router");
            envelope.attach_trace(&consumer);
            assert_eq!(
                consumer
                    .context()
                    .span()
                    .span_context()
                    .trace_id()
                    .to_string(),
                trace_id,
                "the consumer's span joins the producer's trace"
            );
        });
    }

    #[test]
    fn decode_checks_the_declared_type() {
        let e = new_envelope("test", &InteractionCreated::default());
        assert!(e.traceparent.is_empty() || e.traceparent.starts_with("00-"));
        assert_eq!(e.event_type, "centralino.v1.InteractionCreated");
        assert!(e.decode::<InteractionCreated>().is_ok());
        assert!(matches!(
            e.decode::<InteractionAbandoned>(),
            Err(DecodeError::WrongType { .. })
        ));
        let mut garbage = e.clone();
        garbage.payload = vec![0xff, 0xff, 0xff];
        assert!(matches!(
            garbage.decode::<InteractionCreated>(),
            Err(DecodeError::Payload(_))
        ));
    }
}
