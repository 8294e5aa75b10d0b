//! A service started while PostgreSQL is down (a container started before its
//! database, or restarted during its restart) waits for it, and is up within
//! 10 s of its return however long it was away; it used to give up after its
//! 10 s connect timeout and leave the restarting to a supervisor whose waits
//! grow to a minute.
//!
//! It stops PostgreSQL, so `cargo xtask test` runs it alone, before the rest
//! of the suite: `cargo nextest run -p centralino --run-ignored only`.

use std::time::{Duration, Instant};

use centralino_test_support::TestDatabase;

/// Starts PostgreSQL again when dropped, so a failing test never leaves it down.
struct PostgresDown;

impl PostgresDown {
    fn stop() -> Self {
        assert!(
            centralino_test_support::postgres_cluster("stop"),
            "pg_ctlcluster stop failed"
        );
        Self
    }
}

impl Drop for PostgresDown {
    fn drop(&mut self) {
        let _ = centralino_test_support::postgres_cluster("start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops PostgreSQL; cargo xtask test runs it in its own phase"]
async fn a_service_started_during_a_long_database_outage_is_up_within_10_s_of_its_return() {
    let db = TestDatabase::postgres().await;
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-outage-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = {url:?}\n",
            data = dir.display().to_string(),
            url = db.url,
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let down = tokio::task::spawn_blocking(PostgresDown::stop)
        .await
        .expect("stop PostgreSQL");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let starting = tokio::spawn(async move {
        centralino::serve(
            &config,
            &[centralino::Service::Routing, centralino::Service::History],
            "centralino-outage-test",
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    // The outage itself: longer than the connect timeout, long enough for a
    // doubling wait to pass 15 s.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        !starting.is_finished(),
        "the service waits for its database instead of giving up"
    );
    tokio::task::spawn_blocking(move || drop(down))
        .await
        .expect("start PostgreSQL");
    let back = Instant::now();
    let running = tokio::time::timeout(Duration::from_secs(30), starting)
        .await
        .expect("up within 30 s of the database's return")
        .expect("join")
        .expect("the service starts once its database is back");
    let took = back.elapsed();
    eprintln!("postgres: 20 s outage at start: services up {took:?} after the database's return");
    assert!(
        took < Duration::from_secs(10),
        "up {took:?} after the database came back"
    );
    assert!(
        running
            .services
            .iter()
            .any(|s| s.contains("HistoryService"))
    );
    let _ = stop.send(());
    let _ = running.task.await;
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// An agent's email reply that arrives while PostgreSQL is down for 30 s is
/// sent once it is back, exactly once: the email service does not exit when
/// it loses its database (it steps down and contends again), the command
/// waits in RabbitMQ instead of being spent toward its delivery limit, and
/// the new leadership sends it. Real RabbitMQ, PostgreSQL, Dovecot and an
/// SMTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops PostgreSQL; cargo xtask test runs it in its own phase"]
async fn an_email_reply_sent_during_a_30_s_database_outage_is_sent_once_after_it() {
    use centralino_bus::{AmqpBus, AmqpConfig, Bus, ConsumerSpec, Exchange};
    use centralino_proto::v1;
    use centralino_test_support::eventually;
    use centralino_test_support::mail::{Dovecot, PASSWORD, SmtpSink};
    use centralino_test_support::observer::Observer;
    use std::sync::Arc;
    const SUPPORT: &str = "support@example.test";
    const REPLY: &str = "Risposta scritta durante il guasto";
    let db = TestDatabase::postgres().await;
    let prefix = centralino_test_support::bus_prefix("ot");
    let dovecot = Dovecot::start(&[SUPPORT]);
    let smtp = SmtpSink::start();
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-outage-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nurl = {url:?}\n[bus]\nurl = {amqp:?}\nprefix = {prefix:?}\n\
             [email]\npoll_interval_secs = 1\n\
             [email.smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\nsecurity = \"plain\"\n\
             [[email.mailboxes]]\nname = \"support\"\naddress = \"{SUPPORT}\"\nqueue = \"support\"\n\
             host = \"127.0.0.1\"\nport = {imap}\nsecurity = \"plain\"\nuser = \"{SUPPORT}\"\npassword = \"{PASSWORD}\"\n",
            data = dir.display().to_string(),
            url = db.url,
            amqp = centralino_test_support::amqp_url(),
            smtp = smtp.port(),
            imap = dovecot.port(),
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let mut amqp = AmqpConfig::new(centralino_test_support::amqp_url());
    amqp.topology = centralino_bus::Topology::new(prefix.clone());
    amqp.connection_name = "outage-test-observer".into();
    let bus = Arc::new(AmqpBus::connect(amqp).await.expect("RabbitMQ"));
    let shared: Arc<dyn Bus> = bus.clone();
    let mut observer = Observer::start(
        &shared,
        ConsumerSpec::new("observer").bind(Exchange::Events, "interaction.email.#"),
    )
    .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let config = config.clone();
        tokio::spawn(async move {
            centralino::serve_contending(
                &config,
                &[centralino::Service::Email],
                "centralino-outage-test",
                async {
                    let _ = stopped.await;
                },
                |_| {},
            )
            .await
        })
    };
    crate::email::append(
        dovecot.port(),
        SUPPORT,
        "From: Lucia Bianchi <lucia@example.test>\r\nTo: support@example.test\r\n\
         Subject: Contratto\r\nMessage-ID: <outage-1@example.test>\r\n\r\nVorrei disdire.\r\n",
    )
    .await;
    let interaction = eventually(Duration::from_secs(60), "the email imported", || async {
        observer
            .decoded::<v1::InteractionCreated>()
            .into_iter()
            .find_map(|c| c.interaction)
            .map(|i| i.id)
    })
    .await;
    let down = tokio::task::spawn_blocking(PostgresDown::stop)
        .await
        .expect("stop PostgreSQL");
    let reply_id = uuid::Uuid::now_v7().to_string();
    bus.publish(
        Exchange::Commands,
        "email.send",
        &centralino_bus::new_envelope(
            "agent-desktop",
            &v1::SendMessage {
                message_id: reply_id.clone(),
                interaction_id: interaction.clone(),
                body: REPLY.into(),
                agent_id: "ada".into(),
                ..Default::default()
            },
        ),
    )
    .await
    .expect("the reply command is published during the outage");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        !serving.is_finished(),
        "the service steps down and waits; it does not exit"
    );
    let replies = |smtp: &SmtpSink| {
        smtp.messages()
            .iter()
            .filter(|m| String::from_utf8_lossy(m).contains(REPLY))
            .count()
    };
    assert_eq!(
        replies(&smtp),
        0,
        "nothing can be sent without the database"
    );
    tokio::task::spawn_blocking(move || drop(down))
        .await
        .expect("start PostgreSQL");
    let back = Instant::now();
    let status = eventually(
        Duration::from_secs(60),
        "the reply's status after the database's return",
        || async {
            observer
                .decoded::<v1::MessageStatusChanged>()
                .into_iter()
                .find(|s| s.message_id == reply_id)
        },
    )
    .await;
    assert_eq!(status.status, "sent", "{status:?}");
    eprintln!(
        "postgres: 30 s outage: the reply sent {:?} after the database's return",
        back.elapsed()
    );
    assert_eq!(replies(&smtp), 1, "the reply reached the SMTP server once");
    // One outbound row, tried once and sent: nothing left to send it again.
    let check = centralino_store::connect(&db.url, 1)
        .await
        .expect("database");
    let rows: i64 = {
        use centralino_store::sea_orm::{ConnectionTrait as _, Statement};
        check
            .query_one_raw(Statement::from_string(
                check.get_database_backend(),
                format!(
                    "SELECT count(*) AS n FROM email_outbound \
                     WHERE id = '{reply_id}' AND attempts = 1 AND status = 'sent'"
                ),
            ))
            .await
            .expect("query")
            .expect("a row")
            .try_get("", "n")
            .expect("n")
    };
    assert_eq!(rows, 1);
    let _ = check.close().await;
    assert!(
        bus.dead_letters("email", 10)
            .await
            .expect("dead letters")
            .is_empty(),
        "the command was not dead-lettered"
    );
    let _ = stop.send(());
    serving
        .await
        .expect("join")
        .expect("the service stops cleanly");
    observer.stop().await;
    bus.close().await;
    let (queues, exchanges) =
        centralino_test_support::rabbitmq_shared_objects(&prefix, &["email", "observer"]);
    centralino_test_support::delete_rabbitmq_objects(
        &centralino_test_support::amqp_url(),
        &queues,
        &exchanges,
    )
    .await;
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A reply sent over `ConversationService` while RabbitMQ is down is queued
/// (its row and its command commit together in history's outbox) and reaches
/// the SMSC once, after the broker is back; a retry during the outage sends
/// nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops RabbitMQ; cargo xtask test runs it in its own phase"]
async fn an_sms_reply_sent_while_the_broker_is_down_goes_once_when_it_returns() {
    use centralino_proto::v1;
    use centralino_proto::v1::conversation_service_client::ConversationServiceClient;
    use centralino_proto::v1::history_service_client::HistoryServiceClient;
    use centralino_test_support::eventually;
    use centralino_test_support::mail::Smsc;
    const REPLY: &str = "Risposta scritta mentre il broker era giù";
    let db = TestDatabase::postgres().await;
    let prefix = centralino_test_support::bus_prefix("ot");
    let smsc = Smsc::start();
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-outage-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [store]\nurl = {url:?}\n[bus]\nurl = {amqp:?}\nprefix = {prefix:?}\n\
             [auth]\nsecret = {secret:?}\n\
             [sms]\nnumbers = [{{ number = \"4321\", queue = \"support\" }}]\n\
             [sms.smpp]\nhost = \"127.0.0.1\"\nport = {smpp}\nsystem_id = \"centralino\"\npassword = \"secret\"\n\
             [[routing.queues]]\nname = \"support\"\nchannels = [\"sms\"]\n",
            data = dir.display().to_string(),
            url = db.url,
            amqp = centralino_test_support::amqp_url(),
            secret = "o".repeat(40),
            smpp = smsc.port(),
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    eventually(Duration::from_secs(30), "the SMS adapter bound", || async {
        smsc.mobile_originated("393331234567", "4321", "Dov'è il mio pacco?")
            .then_some(())
    })
    .await;
    let token = centralino::token_key(&config)
        .expect("key")
        .mint(
            "outage-integrator",
            centralino_auth::Role::Integrator,
            chrono::Utc::now().timestamp(),
            600,
        )
        .expect("token");
    fn bearer<T>(token: &str, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        r
    }
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.grpc_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let history = HistoryServiceClient::new(channel.clone());
    let conversation = eventually(Duration::from_secs(30), "the SMS in history", || {
        let mut history = history.clone();
        let token = token.clone();
        let found = bearer(
            &token,
            v1::FindCustomersRequest {
                identifier: Some(v1::CustomerIdentifier {
                    kind: v1::customer_identifier::Kind::Phone as i32,
                    value: "+393331234567".into(),
                }),
                ..Default::default()
            },
        );
        async move {
            let customer = history
                .find_customers(found)
                .await
                .ok()?
                .into_inner()
                .customers
                .pop()?;
            let timeline = bearer(
                &token,
                v1::ListTimelineRequest {
                    customer_id: customer.id,
                    ..Default::default()
                },
            );
            history
                .list_timeline(timeline)
                .await
                .ok()?
                .into_inner()
                .interactions
                .pop()
                .map(|i| i.id)
        }
    })
    .await;
    let down = tokio::task::spawn_blocking(centralino_test_support::BrokerDown::stop)
        .await
        .expect("stop RabbitMQ");
    let mut conv = ConversationServiceClient::new(channel);
    let message_id = uuid::Uuid::now_v7().to_string();
    let send = || v1::SendMessageRequest {
        message: Some(v1::SendMessage {
            message_id: message_id.clone(),
            interaction_id: conversation.clone(),
            channel: v1::Channel::Sms as i32,
            body: REPLY.into(),
            ..Default::default()
        }),
        validate_only: false,
    };
    let queued = conv
        .send_message(bearer(&token, send()))
        .await
        .expect("queued while the broker is down")
        .into_inner();
    assert_eq!(queued.status, "queued");
    let again = conv
        .send_message(bearer(&token, send()))
        .await
        .expect("a retry answers")
        .into_inner();
    assert_eq!(again.message_id, message_id);
    // The outage lasts a while (what is measured is what happens after it).
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !smsc.submitted().contains("giù"),
        "nothing can go while the broker is down"
    );
    tokio::task::spawn_blocking(move || down.start())
        .await
        .expect("start RabbitMQ");
    let returned = Instant::now();
    eventually(Duration::from_secs(60), "the reply at the SMSC", || async {
        smsc.submitted().contains("giù").then_some(())
    })
    .await;
    let took = returned.elapsed();
    let sent = eventually(Duration::from_secs(30), "the reply's status sent", || {
        let mut conv = conv.clone();
        let get = bearer(
            &token,
            v1::GetMessageRequest {
                message_id: message_id.clone(),
            },
        );
        async move {
            let m = conv.get_message(get).await.ok()?.into_inner();
            (m.status == "sent" || m.status == "delivered").then_some(m)
        }
    })
    .await;
    assert_eq!(sent.message_id, message_id);
    let copies = smsc.submitted().matches("giù").count();
    assert_eq!(copies, 1, "sent once: {}", smsc.submitted());
    println!("the reply reached the SMSC {took:?} after the broker returned");
    let _ = stop.send(());
    let _ = running.task.await;
    crate::python::delete_bus_objects(&centralino_test_support::amqp_url(), &prefix).await;
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(dir);
}
