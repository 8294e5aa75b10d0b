//! Builds a bus of each kind with names private to one test, and cleans up after.

use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{AmqpBus, AmqpConfig, Bus, Envelope, MemoryBus, Topology};
use centralino_proto::v1::InteractionCreated;

/// Delivery limit used by every test bus.
pub const DELIVERY_LIMIT: u32 = 3;

/// Consumer names the tests use (for cleanup).
pub const CONSUMERS: &[&str] = &["app", "other", "poison"];

pub struct TestBus {
    pub bus: Arc<dyn Bus>,
    amqp: Option<(AmqpBus, AmqpConfig)>,
}

impl TestBus {
    pub fn memory() -> Self {
        Self {
            bus: Arc::new(MemoryBus::new(DELIVERY_LIMIT)),
            amqp: None,
        }
    }

    pub fn amqp_config() -> AmqpConfig {
        let mut config = AmqpConfig::new(centralino_test_support::amqp_url());
        let prefix = centralino_test_support::bus_prefix("t");
        config.connection_name = format!("centralino-test-{prefix}");
        config.topology = Topology::new(prefix);
        config.delivery_limit = DELIVERY_LIMIT;
        config.publish_timeout = Duration::from_secs(20);
        config.reconnect_max = Duration::from_millis(500);
        config
    }

    pub async fn amqp() -> Self {
        let config = Self::amqp_config();
        let bus = AmqpBus::connect(config.clone())
            .await
            .expect("connect to RabbitMQ");
        Self {
            bus: Arc::new(bus.clone()),
            amqp: Some((bus, config)),
        }
    }

    pub fn connection_name(&self) -> Option<String> {
        self.amqp.as_ref().map(|(_, c)| c.connection_name.clone())
    }

    /// Deletes this test's queues and exchanges from the broker.
    pub async fn cleanup(self) {
        let Some((bus, config)) = self.amqp else {
            return;
        };
        bus.close().await;
        delete_topology(&config).await;
    }
}

pub async fn delete_topology(config: &AmqpConfig) {
    let (queues, exchanges) =
        centralino_test_support::rabbitmq_shared_objects(config.topology.prefix(), CONSUMERS);
    centralino_test_support::delete_rabbitmq_objects(&config.url, &queues, &exchanges).await;
}

/// An `InteractionCreated` envelope whose subject is `label`.
pub fn event(label: &str) -> Envelope {
    let payload = InteractionCreated {
        interaction: Some(centralino_proto::v1::Interaction {
            id: uuid::Uuid::now_v7().to_string(),
            subject: label.to_owned(),
            ..Default::default()
        }),
    };
    centralino_bus::new_envelope("test", &payload)
}

/// The subject carried by an envelope made with [`event`].
pub fn label(envelope: &Envelope) -> String {
    use centralino_bus::EnvelopeExt as _;
    envelope
        .decode::<InteractionCreated>()
        .expect("test payload decodes")
        .interaction
        .map(|i| i.subject)
        .unwrap_or_default()
}

/// Publishes every envelope with up to 256 unconfirmed at once; panics on any failure.
pub async fn publish_all(bus: &Arc<dyn Bus>, routing_key: &str, envelopes: Vec<Envelope>) {
    use futures::StreamExt as _;
    futures::stream::iter(envelopes)
        .map(|e| {
            let bus = bus.clone();
            async move {
                bus.publish(centralino_bus::Exchange::Events, routing_key, &e)
                    .await
            }
        })
        .buffer_unordered(256)
        .for_each(|r| async move { r.expect("publish confirmed") })
        .await;
}
