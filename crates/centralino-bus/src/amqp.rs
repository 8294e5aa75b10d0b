//! RabbitMQ implementation of the bus.
//!
//! One AMQP connection per [`AmqpBus`], shared by a publishing channel in confirm
//! mode and one channel per subscription. lapin's own recovery is off: when the
//! connection or a channel fails, the next user reconnects with exponential backoff
//! and re-declares the whole topology, publishers retry unconfirmed messages (a
//! duplicate is possible, a loss is not) and consumers resubscribe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use prost::Message as _;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::time::Instant;

use crate::{
    Acker, Bus, BusError, ConsumerSpec, DeadLetter, Delivery, DeliverySource, Envelope, Exchange,
    Outcome, Subscription, Topology,
};

/// Longest wait for a TCP + AMQP handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Header carrying the original routing key, so replayed dead letters keep it.
const ROUTING_KEY_HEADER: &str = "x-centralino-routing-key";

/// How to reach RabbitMQ and how the topology behaves.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` (or `amqps://`).
    pub url: String,
    pub topology: Topology,
    /// Returns of one message (nack or consumer loss) before it is dead-lettered.
    pub delivery_limit: u32,
    /// Published messages awaiting their confirm at once.
    pub publish_window: usize,
    /// How long `publish` keeps retrying while the broker is unreachable.
    pub publish_timeout: Duration,
    /// Shown in the broker's connection list.
    pub connection_name: String,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Events parked in the unrouted queue before the oldest are dropped.
    pub unrouted_max_length: i64,
}

impl AmqpConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            topology: Topology::default(),
            delivery_limit: 5,
            publish_window: 512,
            publish_timeout: Duration::from_secs(30),
            connection_name: "centralino".into(),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
            unrouted_max_length: 100_000,
        }
    }
}

#[derive(Clone)]
struct Link {
    connection: Arc<Connection>,
    publisher: Channel,
    generation: u64,
}

impl Link {
    fn healthy(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

/// Which connection a user needs. Publishing and consuming use separate
/// connections, as RabbitMQ advises: when the broker blocks publishers (memory
/// or disk alarm) consumers can still ack and drain the queues, and a channel
/// error on the publisher never takes the consumers' unacked messages with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Publish = 0,
    Consume = 1,
}

impl Purpose {
    fn suffix(self) -> &'static str {
        match self {
            Purpose::Publish => "publish",
            Purpose::Consume => "consume",
        }
    }
}

#[derive(Default)]
struct Slot {
    /// Serializes reconnects; holds the link being replaced.
    link: Mutex<Option<Link>>,
    /// The current link, read without waiting on a reconnect.
    current: std::sync::RwLock<Option<Link>>,
}

struct Inner {
    config: AmqpConfig,
    window: Semaphore,
    slots: [Slot; 2],
    generation: AtomicU64,
    closed: AtomicBool,
}

/// The RabbitMQ bus. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBus")
            .field("topology", &self.inner.config.topology)
            .finish_non_exhaustive()
    }
}

fn short(s: &str) -> ShortString {
    ShortString::from(s)
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn as_u32(v: &AMQPValue) -> Option<u32> {
    let n: i64 = match v {
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    };
    u32::try_from(n).ok()
}

fn header_str(props: &BasicProperties, key: &str) -> Option<String> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn delivery_count(props: &BasicProperties) -> u32 {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count"))
        .and_then(as_u32)
        .unwrap_or(0)
}

impl AmqpBus {
    /// Connects and declares the shared topology, retrying until `publish_timeout`.
    pub async fn connect(config: AmqpConfig) -> Result<Self, BusError> {
        let window = Semaphore::new(config.publish_window.max(1));
        let bus = Self {
            inner: Arc::new(Inner {
                config,
                window,
                slots: [Slot::default(), Slot::default()],
                generation: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        };
        let deadline = Instant::now() + bus.inner.config.publish_timeout;
        bus.inner.link(Purpose::Publish, Some(deadline)).await?;
        Ok(bus)
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.config.topology
    }

    /// Closes the connection; subscriptions end and later calls fail with [`BusError::Closed`].
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        for slot in &self.inner.slots {
            if let Ok(mut current) = slot.current.write() {
                *current = None;
            }
            if let Some(link) = slot.link.lock().await.take() {
                let _ = link.connection.close(200, short("shutdown")).await;
            }
        }
    }
}

impl Inner {
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.config
            .reconnect_min
            .saturating_mul(factor)
            .min(self.config.reconnect_max)
    }

    /// The current healthy link, reconnecting (with backoff, until `deadline` or
    /// forever when `None`) if there is none.
    async fn link(&self, purpose: Purpose, deadline: Option<Instant>) -> Result<Link, BusError> {
        let slot = &self.slots[purpose as usize];
        if let Some(link) = slot
            .current
            .read()
            .ok()
            .and_then(|c| c.as_ref().filter(|l| l.healthy()).cloned())
        {
            return Ok(link);
        }
        // Someone else may be reconnecting (a consumer waits without a deadline):
        // a publisher waits for them only until its own deadline.
        let mut guard = match deadline {
            Some(d) => tokio::time::timeout_at(d, slot.link.lock())
                .await
                .map_err(|_| BusError::Unavailable("still reconnecting to rabbitmq".into()))?,
            None => slot.link.lock().await,
        };
        if let Some(link) = guard.as_ref().filter(|l| l.healthy()) {
            return Ok(link.clone());
        }
        let mut attempt = 0;
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(BusError::Closed);
            }
            match self.open(purpose).await {
                Ok(link) => {
                    if attempt > 0 || guard.is_some() {
                        tracing::info!(
                            generation = link.generation,
                            connection = purpose.suffix(),
                            "reconnected to rabbitmq"
                        );
                    }
                    *guard = Some(link.clone());
                    if let Ok(mut current) = slot.current.write() {
                        *current = Some(link.clone());
                    }
                    return Ok(link);
                }
                Err(e) => {
                    let wait = self.backoff(attempt);
                    attempt += 1;
                    if deadline.is_some_and(|d| Instant::now() + wait > d) {
                        return Err(BusError::Unavailable(e.to_string()));
                    }
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "rabbitmq connection failed");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Forgets `link` if it is still the current one, so the next user reconnects.
    /// When the reconnect lock is busy, a reconnect is already under way: nothing to do.
    async fn invalidate(&self, purpose: Purpose, generation: u64) {
        let slot = &self.slots[purpose as usize];
        let Ok(mut guard) = slot.link.try_lock() else {
            return;
        };
        if guard.as_ref().is_some_and(|l| l.generation == generation)
            && let Some(old) = guard.take()
        {
            if let Ok(mut current) = slot.current.write() {
                *current = None;
            }
            let _ = old.connection.close(200, short("reconnecting")).await;
        }
    }

    async fn open(&self, purpose: Purpose) -> Result<Link, BusError> {
        let name = format!("{}-{}", self.config.connection_name, purpose.suffix());
        let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
        // lapin has no connect timeout; a peer that drops packets would hold the
        // reconnect lock for minutes.
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&with_heartbeat(&self.config.url), props),
        )
        .await
        .map_err(|_| BusError::Unavailable("connecting to rabbitmq timed out".into()))??;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.declare_shared(&publisher).await?;
        Ok(Link {
            connection: Arc::new(connection),
            publisher,
            generation: self.generation.fetch_add(1, Ordering::SeqCst) + 1,
        })
    }

    async fn declare_shared(&self, ch: &Channel) -> Result<(), lapin::Error> {
        let t = &self.config.topology;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            short(&t.unrouted_exchange()),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        let mut unrouted_args = FieldTable::default();
        unrouted_args.insert(short("x-queue-type"), long("quorum"));
        unrouted_args.insert(
            short("x-max-length"),
            AMQPValue::LongLongInt(self.config.unrouted_max_length),
        );
        ch.queue_declare(
            short(&t.unrouted_queue()),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            unrouted_args,
        )
        .await?;
        ch.queue_bind(
            short(&t.unrouted_queue()),
            short(&t.unrouted_exchange()),
            short(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut events_args = FieldTable::default();
        events_args.insert(short("alternate-exchange"), long(&t.unrouted_exchange()));
        for (name, kind, args) in [
            (
                t.exchange(Exchange::Events),
                ExchangeKind::Topic,
                events_args,
            ),
            (
                t.exchange(Exchange::Commands),
                ExchangeKind::Topic,
                FieldTable::default(),
            ),
            (
                t.dead_letter_exchange(),
                ExchangeKind::Direct,
                FieldTable::default(),
            ),
        ] {
            ch.exchange_declare(short(&name), kind, durable, args)
                .await?;
        }
        Ok(())
    }

    async fn declare_consumer(
        &self,
        ch: &Channel,
        spec: &ConsumerSpec,
    ) -> Result<(), lapin::Error> {
        let t = &self.config.topology;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let mut dlq_args = FieldTable::default();
        dlq_args.insert(short("x-queue-type"), long("quorum"));
        ch.queue_declare(short(&t.dead_letter_queue(&spec.name)), durable, dlq_args)
            .await?;
        ch.queue_bind(
            short(&t.dead_letter_queue(&spec.name)),
            short(&t.dead_letter_exchange()),
            short(&spec.name),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut args = FieldTable::default();
        args.insert(short("x-queue-type"), long("quorum"));
        args.insert(
            short("x-delivery-limit"),
            AMQPValue::LongLongInt(i64::from(self.config.delivery_limit)),
        );
        args.insert(
            short("x-dead-letter-exchange"),
            long(&t.dead_letter_exchange()),
        );
        args.insert(short("x-dead-letter-routing-key"), long(&spec.name));
        args.insert(short("x-dead-letter-strategy"), long("at-least-once"));
        args.insert(short("x-overflow"), long("reject-publish"));
        if spec.single_active {
            args.insert(short("x-single-active-consumer"), AMQPValue::Boolean(true));
        }
        ch.queue_declare(short(&t.queue(&spec.name)), durable, args)
            .await?;
        for (exchange, pattern) in &spec.bindings {
            ch.queue_bind(
                short(&t.queue(&spec.name)),
                short(&t.exchange(*exchange)),
                short(pattern),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        }
        Ok(())
    }

    async fn publish_once(
        &self,
        link: &Link,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), Attempt> {
        let confirm = link
            .publisher
            .basic_publish(
                short(exchange),
                short(routing_key),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                props,
            )
            .await
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        let confirmation = tokio::time::timeout(self.config.publish_timeout, confirm)
            .await
            .map_err(|_| Attempt::Retry("confirm timed out".into()))?
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        match confirmation {
            lapin::Confirmation::Ack(None) => Ok(()),
            lapin::Confirmation::Ack(Some(_)) => Err(Attempt::Fatal(BusError::Unroutable {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
            })),
            lapin::Confirmation::Nack(_) => {
                Err(Attempt::Retry("broker sent a negative confirm".into()))
            }
            lapin::Confirmation::NotRequested => Err(Attempt::Retry(
                "publisher channel is not in confirm mode".into(),
            )),
        }
    }

    /// Publishes with confirms, reconnecting and retrying until `publish_timeout`.
    async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), BusError> {
        let _permit = self.window.acquire().await.map_err(|_| BusError::Closed)?;
        let deadline = Instant::now() + self.config.publish_timeout;
        let mut attempt = 0;
        loop {
            let link = self.link(Purpose::Publish, Some(deadline)).await?;
            match self
                .publish_once(&link, exchange, routing_key, body, props.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => {
                    if !link.healthy() {
                        self.invalidate(Purpose::Publish, link.generation).await;
                    }
                    let wait = self.backoff(attempt);
                    attempt += 1;
                    if Instant::now() + wait > deadline {
                        return Err(BusError::Unavailable(reason));
                    }
                    tracing::debug!(%reason, "publish not confirmed, retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Adds a 10 s heartbeat unless the URL sets one, so a silently dead peer is
/// noticed within about 20 s instead of the broker's default of minutes.
fn with_heartbeat(url: &str) -> String {
    if url.contains("heartbeat=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&heartbeat=10")
    } else {
        format!("{url}?heartbeat=10")
    }
}

enum Attempt {
    Retry(String),
    Fatal(BusError),
}

fn properties(envelope: &Envelope, routing_key: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(short(ROUTING_KEY_HEADER), long(routing_key));
    if !envelope.traceparent.is_empty() {
        headers.insert(short("traceparent"), long(&envelope.traceparent));
    }
    if !envelope.tracestate.is_empty() {
        headers.insert(short("tracestate"), long(&envelope.tracestate));
    }
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(short("application/x-protobuf"))
        .with_message_id(short(&envelope.message_id))
        .with_type(short(&envelope.event_type))
        .with_headers(headers);
    if !envelope.source.is_empty() {
        props = props.with_app_id(short(&envelope.source));
    }
    if let Some(ts) = &envelope.occurred_at
        && let Ok(secs) = u64::try_from(ts.seconds)
    {
        props = props.with_timestamp(secs);
    }
    props
}

#[async_trait::async_trait]
impl Bus for AmqpBus {
    async fn publish(
        &self,
        exchange: Exchange,
        routing_key: &str,
        envelope: &Envelope,
    ) -> Result<(), BusError> {
        crate::validate_outgoing(routing_key, envelope)?;
        let body = envelope.encode_to_vec();
        let name = self.inner.config.topology.exchange(exchange);
        self.inner
            .publish_raw(&name, routing_key, &body, properties(envelope, routing_key))
            .await
    }

    async fn subscribe(&self, spec: ConsumerSpec) -> Result<Subscription, BusError> {
        spec.validate()?;
        // Declare once up front so configuration errors surface to the caller.
        let deadline = Instant::now() + self.inner.config.publish_timeout;
        let link = self.inner.link(Purpose::Consume, Some(deadline)).await?;
        let ch = link.connection.create_channel().await?;
        self.inner.declare_consumer(&ch, &spec).await?;
        let _ = ch.close(200, short("declared")).await;

        let (tx, rx) = mpsc::channel(usize::from(spec.prefetch.max(1)));
        tokio::spawn(consume_loop(self.inner.clone(), spec, tx));
        Ok(Subscription::new(Box::new(AmqpSource { rx })))
    }

    async fn dead_letters(
        &self,
        consumer: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let queue = self.inner.config.topology.dead_letter_queue(consumer);
        let ch = self.checked_dlq_channel(consumer, &queue).await?;
        let mut out = Vec::new();
        // Messages stay unacked while we read, so each get returns a new one; closing
        // the channel puts them all back.
        while out.len() < limit {
            let Some(msg) = ch
                .basic_get(short(&queue), BasicGetOptions { no_ack: false })
                .await?
            else {
                break;
            };
            let d = msg.delivery;
            let Ok(envelope) = Envelope::decode(d.data.as_slice()) else {
                continue;
            };
            out.push(DeadLetter {
                routing_key: header_str(&d.properties, ROUTING_KEY_HEADER)
                    .unwrap_or_else(|| d.routing_key.as_str().to_owned()),
                delivery_count: delivery_count(&d.properties),
                envelope,
            });
        }
        let _ = ch.close(200, short("listed")).await;
        Ok(out)
    }

    async fn replay_dead_letters(&self, consumer: &str, max: usize) -> Result<usize, BusError> {
        let queue = self.inner.config.topology.dead_letter_queue(consumer);
        let target = self.inner.config.topology.queue(consumer);
        let ch = self.checked_dlq_channel(consumer, &queue).await?;
        let mut replayed = 0;
        while replayed < max {
            let Some(msg) = ch
                .basic_get(short(&queue), BasicGetOptions { no_ack: false })
                .await?
            else {
                break;
            };
            let d = msg.delivery;
            let mut props = d.properties.clone();
            // Strip the death history and delivery count so the limit starts afresh.
            if let Some(headers) = props.headers().as_ref() {
                let kept: std::collections::BTreeMap<ShortString, AMQPValue> = headers
                    .inner()
                    .iter()
                    .filter(|(k, _)| {
                        !k.as_str().starts_with("x-death")
                            && !k.as_str().starts_with("x-first-death")
                            && !k.as_str().starts_with("x-last-death")
                            && k.as_str() != "x-delivery-count"
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                props = props.with_headers(FieldTable::from(kept));
            }
            // Straight to the consumer's queue through the default exchange: a replay
            // must not reach every other subscriber again.
            self.inner.publish_raw("", &target, &d.data, props).await?;
            d.acker.ack(BasicAckOptions::default()).await?;
            replayed += 1;
        }
        let _ = ch.close(200, short("replayed")).await;
        Ok(replayed)
    }

    fn kind(&self) -> &'static str {
        "amqp"
    }
}

impl AmqpBus {
    async fn checked_dlq_channel(&self, consumer: &str, queue: &str) -> Result<Channel, BusError> {
        let deadline = Instant::now() + self.inner.config.publish_timeout;
        let link = self.inner.link(Purpose::Consume, Some(deadline)).await?;
        let ch = link.connection.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if ch
            .queue_declare(short(queue), passive, FieldTable::default())
            .await
            .is_err()
        {
            return Err(BusError::UnknownConsumer(consumer.to_owned()));
        }
        Ok(ch)
    }
}

/// Keeps one consumer running for a subscription across connection losses.
async fn consume_loop(inner: Arc<Inner>, spec: ConsumerSpec, tx: mpsc::Sender<Delivery>) {
    let queue = inner.config.topology.queue(&spec.name);
    let mut attempt = 0;
    loop {
        if tx.is_closed() || inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let link = match inner.link(Purpose::Consume, None).await {
            Ok(link) => link,
            Err(_) => return, // closed
        };
        match start_consumer(&inner, &link, &spec, &queue).await {
            Ok((channel, mut consumer)) => {
                if attempt > 0 {
                    tracing::info!(queue = %queue, "consumer resumed");
                }
                attempt = 0;
                loop {
                    tokio::select! {
                        _ = tx.closed() => {
                            // Unacked deliveries return to the queue when the channel closes.
                            let _ = channel.close(200, short("subscription dropped")).await;
                            return;
                        }
                        item = consumer.next() => match item {
                            Some(Ok(d)) => {
                                if let Some(delivery) = to_delivery(d).await
                                    && tx.send(delivery).await.is_err() {
                                        let _ = channel.close(200, short("subscription dropped")).await;
                                        return;
                                    }
                            }
                            Some(Err(e)) => {
                                tracing::warn!(queue = %queue, error = %e, "consumer failed, resubscribing");
                                break;
                            }
                            None => {
                                tracing::warn!(queue = %queue, "consumer cancelled, resubscribing");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(queue = %queue, error = %e, "cannot start consumer"),
        }
        if !link.healthy() {
            inner.invalidate(Purpose::Consume, link.generation).await;
        }
        let wait = inner.backoff(attempt);
        attempt += 1;
        tokio::time::sleep(wait).await;
    }
}

async fn start_consumer(
    inner: &Inner,
    link: &Link,
    spec: &ConsumerSpec,
    queue: &str,
) -> Result<(Channel, lapin::Consumer), lapin::Error> {
    let ch = link.connection.create_channel().await?;
    ch.basic_qos(spec.prefetch.max(1), BasicQosOptions::default())
        .await?;
    inner.declare_consumer(&ch, spec).await?;
    let consumer = ch
        .basic_consume(
            short(queue),
            short(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((ch, consumer))
}

/// Decodes a delivery; a body that is not an envelope can never succeed, so it is
/// dead-lettered at once.
async fn to_delivery(d: lapin::message::Delivery) -> Option<Delivery> {
    match Envelope::decode(d.data.as_slice()) {
        Ok(envelope) if crate::acceptable_incoming(&envelope) => {
            let routing_key = header_str(&d.properties, ROUTING_KEY_HEADER)
                .unwrap_or_else(|| d.routing_key.as_str().to_owned());
            let count = delivery_count(&d.properties);
            Some(Delivery::new(
                envelope,
                routing_key,
                d.redelivered || count > 0,
                count,
                Box::new(AmqpAcker { acker: d.acker }),
            ))
        }
        outcome => {
            let reason = match outcome {
                Err(e) => e.to_string(),
                Ok(_) => "message id missing or longer than 64 bytes".to_owned(),
            };
            tracing::warn!(%reason, routing_key = %d.routing_key, "unusable message, dead-lettering it");
            let _ = d.acker.reject(BasicRejectOptions { requeue: false }).await;
            None
        }
    }
}

struct AmqpSource {
    rx: mpsc::Receiver<Delivery>,
}

#[async_trait::async_trait]
impl DeliverySource for AmqpSource {
    async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}

struct AmqpAcker {
    acker: lapin::Acker,
}

#[async_trait::async_trait]
impl Acker for AmqpAcker {
    async fn settle(&self, outcome: Outcome) -> Result<(), BusError> {
        let result = match outcome {
            Outcome::Ack => self.acker.ack(BasicAckOptions::default()).await,
            Outcome::Retry => {
                self.acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        multiple: false,
                    })
                    .await
            }
            Outcome::DeadLetter => {
                self.acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await
            }
        };
        // lapin answers Ok(false) when the channel is gone or the delivery was settled.
        match result {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(BusError::SubscriptionClosed),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn heartbeat_is_added_once() {
        assert_eq!(
            super::with_heartbeat("amqp://h/%2f"),
            "amqp://h/%2f?heartbeat=10"
        );
        assert_eq!(
            super::with_heartbeat("amqp://h/%2f?frame_max=8192"),
            "amqp://h/%2f?frame_max=8192&heartbeat=10"
        );
        assert_eq!(
            super::with_heartbeat("amqp://h/?heartbeat=5"),
            "amqp://h/?heartbeat=5"
        );
    }
}
