//! The contract across the whole tree: every kind of event each channel
//! adapter publishes, with real peers (Dovecot and an SMTP server for email,
//! the SMSC simulator for SMS, SIPp through the IVR for voice, the kiosk for
//! the desk), goes through routing and history in `centralino up` (in-process
//! bus, SQLite) with zero dead letters on any consumer. A payload one side
//! writes and the other refuses (the email token in `conversation_id` was
//! one) fails here, not at a customer's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use centralino_auth::Role;
use centralino_bus::{ConsumerSpec, Exchange, new_envelope};
use centralino_proto::v1;
use centralino_proto::v1::agent_request::Action;
use centralino_proto::v1::agent_update::Update;
use centralino_test_support::agent::{Desk, authed, channel, configure};
use centralino_test_support::eventually;
use centralino_test_support::mail::{Dovecot, PASSWORD, Smsc, SmtpSink};
use centralino_test_support::voice::{CallerScript, Ending, Step, run_sipp, sipp_caller_scenario};

use crate::email::{append, history_client};

const WAIT: Duration = Duration::from_secs(60);
const SUPPORT: &str = "support@example.test";

/// Every routing key the adapters and routing publish in the paths driven
/// below: a kind missing here was not exercised, so the test says which.
const EXPECTED: &[&str] = &[
    "interaction.email.created",
    "interaction.email.message",
    "interaction.email.message_status",
    "interaction.sms.created",
    "interaction.sms.message",
    "interaction.sms.message_status",
    "interaction.voice.created",
    "interaction.voice.abandoned",
    "interaction.voice.ended",
    "interaction.desk.created",
    "interaction.desk.called",
    "interaction.desk.served",
    "routing.email.queued",
    "routing.email.offered",
    "routing.email.assigned",
    "routing.email.completed",
    "routing.sms.assigned",
    "routing.sms.completed",
    "routing.voice.queued",
    "routing.voice.abandoned",
    "routing.desk.assigned",
    "routing.desk.completed",
    "email.send",
    "sms.send",
];

/// What the process logs, as `main` filters it at the default level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The customers' personal data the test sends: none of it may be logged.
const PERSONAL: &[&str] = &[
    "393331234567",
    "3331234567",
    "393471234567",
    "3471234567",
    "3475550101",
    "555 0101",
    "nicolo@example.test",
    "Nicol",
    "Bianchi",
    "pacco",
    "disdire",
    "occupiamo",
    "appuntamento",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_every_adapter_passes_routing_and_history_without_a_dead_letter() {
    // The log at the default level, with the filter `main` installs.
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            centralino_telemetry::effective_filter(
                &centralino::config::TelemetryConfig::default().filter,
            ),
        ))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber of this test process (nextest runs each test alone)");
    let dovecot = Dovecot::start(&[SUPPORT]);
    let smtp = SmtpSink::start();
    let smsc = Smsc::start();
    let prompts = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/prompts");
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-contract-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [email]\npoll_interval_secs = 1\n\
             [email.smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\nsecurity = \"plain\"\n\
             [[email.mailboxes]]\nname = \"support\"\naddress = \"{SUPPORT}\"\nqueue = \"support\"\n\
             host = \"127.0.0.1\"\nport = {imap}\nsecurity = \"plain\"\nuser = \"{SUPPORT}\"\npassword = \"{PASSWORD}\"\n\
             [sms]\nnumbers = [{{ number = \"4321\", queue = \"sms\" }}]\n\
             [sms.smpp]\nhost = \"127.0.0.1\"\nport = {smpp}\nsystem_id = \"centralino\"\npassword = \"secret\"\n\
             [voice]\nlisten = \"127.0.0.1:0\"\nprompts_dir = {prompts:?}\n\
             [[voice.numbers]]\nnumber = \"100\"\nflow = \"main\"\n\
             [voice.flows.main]\nstart = \"root\"\ngoodbye = [\"menu/goodbye\"]\n\
             [voice.flows.main.menus.root]\nprompt = [\"menu/welcome\"]\n\
             timeout_ms = 10000\nretries = 0\ndefault = \"hangup\"\n\
             [voice.flows.main.menus.root.options]\n\"1\" = \"queue:sales:10\"\n\
             [desk]\nlisten = \"127.0.0.1:0\"\n\
             [[desk.sites]]\nid = \"casa\"\ntimezone = \"UTC\"\nopens = \"00:00\"\ncloses = \"23:59\"\n\
             counters = [\"1\"]\n\
             [[desk.services]]\ncode = \"A\"\nname = \"Payments\"\nqueue = \"desk-a-{{site}}\"\n",
            data = dir.display().to_string(),
            smtp = smtp.port(),
            imap = dovecot.port(),
            smpp = smsc.port(),
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    let bus = running.bus.clone();

    // A tap on both exchanges: which kinds went by.
    let seen: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut tap = bus
        .subscribe(
            ConsumerSpec::new("contract-tap")
                .bind(Exchange::Events, "#")
                .bind(Exchange::Commands, "#"),
        )
        .await
        .expect("tap");
    let counted = seen.clone();
    let tapping = tokio::spawn(async move {
        while let Some(d) = tap.next().await {
            if let Ok(mut s) = counted.lock() {
                *s.entry(d.routing_key.clone()).or_default() += 1;
            }
            let _ = d.ack().await;
        }
    });

    // At start no queue is defined: each one is named, with what sends work there.
    assert_eq!(
        running.undefined_queues.len(),
        4,
        "{:?}",
        running.undefined_queues
    );
    assert!(
        running
            .undefined_queues
            .iter()
            .any(|l| l.contains("\"support\" (email mailbox support)")
                && l.contains("its work is held")),
        "{:?}",
        running.undefined_queues
    );
    // Work that arrives before its queue is defined is held, not lost: the
    // email waits in routing's dead letters, and defining the queue routes it.
    append(
        dovecot.port(),
        SUPPORT,
        "From: =?UTF-8?Q?Nicol=C3=B2?= Bianchi <nicolo@example.test>\r\nTo: support@example.test\r\n\
         Subject: Contratto\r\nMessage-ID: <contract-1@example.test>\r\n\r\nVorrei disdire.\r\n",
    )
    .await;
    eventually(
        WAIT,
        "the email held by routing for want of its queue",
        || async {
            let held = bus
                .dead_letters(centralino_router::SERVICE, 10)
                .await
                .ok()?;
            (!held.is_empty()).then_some(())
        },
    )
    .await;

    let key = centralino::token_key(&config).expect("key");
    let token = |sub: &str, role| {
        key.mint(sub, role, chrono::Utc::now().timestamp(), 600)
            .expect("token")
    };
    let queue = |name: &str, ch: v1::Channel| v1::QueueDefinition {
        name: name.into(),
        channels: vec![ch as i32],
        ..Default::default()
    };
    configure(
        running.grpc_addr,
        &token("admin", Role::Admin),
        &[],
        vec![
            queue("support", v1::Channel::Email),
            queue("sms", v1::Channel::Sms),
            queue("sales", v1::Channel::Voice),
            queue("desk-a-casa", v1::Channel::Desk),
        ],
        vec![v1::AgentDefinition {
            name: "anna".into(),
            // No phone: the call waits until its caller gives up.
            capacity: vec![v1::ChannelCapacity {
                channel: v1::Channel::Voice as i32,
                capacity: 0,
            }],
            ..Default::default()
        }],
    )
    .await;
    let anna = token("anna", Role::Agent);
    v1::desk_service_client::DeskServiceClient::new(channel(running.grpc_addr).await)
        .open_counter(authed(
            v1::OpenCounterRequest {
                site: "casa".into(),
                counter: "1".into(),
            },
            &anna,
        ))
        .await
        .expect("counter opened");
    let (mut desktop, _) = Desk::open(running.grpc_addr, &anna).await.expect("session");
    desktop.available().await;

    // Every channel at once, from its real peer (the email is in already).
    eventually(WAIT, "the SMS adapter bound to the SMSC", || async {
        smsc.mobile_originated("393331234567", "4321", "Il pacco non è arrivato")
            .then_some(())
    })
    .await;
    let http = running.desk_http.expect("the desk runs");
    let ticket = reqwest::Client::new()
        .post(format!("http://{http}/api/sites/casa/tickets"))
        .bearer_auth(token("kiosk-casa", Role::Kiosk))
        .json(&serde_json::json!({ "service": "A", "phone": "+39 347 555 0101" }))
        .send()
        .await
        .expect("kiosk");
    assert_eq!(ticket.status(), 201);
    let caller = CallerScript::new("100", "+393471234567")
        .steps([Step::Pause(800), Step::Info('1'), Step::Pause(1500)])
        .ending(Ending::Bye);
    run_sipp(
        &sipp_caller_scenario(&caller),
        running.voice_sip.expect("the voice adapter runs"),
        &[],
        Duration::from_secs(30),
    )
    .await
    .assert_success();

    // Anna takes the email, the SMS and the ticket, answers the first two and
    // completes all three.
    let mut done: BTreeSet<i32> = BTreeSet::new();
    let mut ids: BTreeMap<i32, String> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while done.len() < 3 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let update = desktop
            .next(left)
            .await
            .unwrap_or_else(|| panic!("anna's work ended early; done: {done:?}"));
        match update {
            Update::Offer(o) => {
                desktop
                    .send(Action::Accept(v1::OfferAnswer {
                        interaction_id: o.interaction_id,
                    }))
                    .await;
            }
            Update::Assigned(a) => {
                let channel = v1::Channel::try_from(a.channel).expect("a channel");
                let reply = |key: &'static str| {
                    let envelope = new_envelope(
                        "contract-test",
                        &v1::SendMessage {
                            message_id: uuid::Uuid::new_v4().to_string(),
                            interaction_id: a.interaction_id.clone(),
                            channel: a.channel,
                            body: "Ce ne occupiamo subito.".into(),
                            agent_id: "anna".into(),
                            ..Default::default()
                        },
                    );
                    let bus = bus.clone();
                    async move {
                        bus.publish(Exchange::Commands, key, &envelope)
                            .await
                            .expect("reply published");
                    }
                };
                match channel {
                    v1::Channel::Email => reply("email.send").await,
                    v1::Channel::Sms => reply("sms.send").await,
                    _ => {}
                }
                desktop
                    .send(Action::Complete(v1::CompleteInteraction {
                        interaction_id: a.interaction_id.clone(),
                        disposition: "resolved".into(),
                        wrap_up_ms: Some(0),
                        ..Default::default()
                    }))
                    .await;
                done.insert(a.channel);
                ids.insert(a.channel, a.interaction_id);
            }
            _ => {}
        }
    }
    assert_eq!(
        done,
        BTreeSet::from([
            v1::Channel::Email as i32,
            v1::Channel::Sms as i32,
            v1::Channel::Desk as i32
        ])
    );

    // Commands about no interaction, and one with a message id that is not
    // a UUID: each is answered with a status (history skips what names no
    // interaction, and dead-letters nothing).
    let notification = uuid::Uuid::new_v4().to_string();
    let outcomes: Arc<Mutex<Vec<v1::MessageStatusChanged>>> = Arc::default();
    let mut statuses = bus
        .subscribe(
            ConsumerSpec::new("contract-statuses")
                .bind(Exchange::Events, "interaction.*.message_status"),
        )
        .await
        .expect("status tap");
    let kept = outcomes.clone();
    let watching = tokio::spawn(async move {
        while let Some(d) = statuses.next().await {
            if let Ok(s) =
                centralino_bus::EnvelopeExt::decode::<v1::MessageStatusChanged>(&d.envelope)
                && let Ok(mut o) = kept.lock()
            {
                o.push(s);
            }
            let _ = d.ack().await;
        }
    });

    for (key, message_id, channel, recipient) in [
        (
            "sms.send",
            notification.as_str(),
            v1::Channel::Sms,
            "+393331234567",
        ),
        ("email.send", "crm-42", v1::Channel::Email, ""),
    ] {
        let envelope = new_envelope(
            "contract-test",
            &v1::SendMessage {
                message_id: message_id.to_owned(),
                interaction_id: "not-an-interaction".into(),
                channel: channel as i32,
                body: "Il suo appuntamento è domani.".into(),
                recipient: recipient.into(),
                purpose: "transactional".into(),
                ..Default::default()
            },
        );
        bus.publish(Exchange::Commands, key, &envelope)
            .await
            .expect("command published");
    }
    eventually(WAIT, "an outcome for each command", || async {
        let o = outcomes.lock().ok()?.clone();
        let crm = o
            .iter()
            .find(|s| s.message_id == "crm-42" && s.status == "failed")?;
        assert!(crm.error.contains("not a UUID"), "{crm:?}");
        let sent = o
            .iter()
            .find(|s| s.message_id == notification && s.status != "queued")?;
        assert_eq!(sent.interaction_id, "", "{sent:?}");
        Some(())
    })
    .await;
    watching.abort();

    // Every kind went by, and the last of each path reached history.
    let missing = eventually(WAIT, "every kind of event published", || async {
        let s = seen.lock().ok()?.clone();
        let missing: Vec<&str> = EXPECTED
            .iter()
            .copied()
            .filter(|k| !s.contains_key(*k))
            .collect();
        missing.is_empty().then_some(missing)
    })
    .await;
    assert!(missing.is_empty());
    let (history, bearer) = history_client(&config, &running).await;
    for (channel, id) in &ids {
        let record = eventually(WAIT, "history has the completed interaction", || {
            let mut history = history.clone();
            let req = bearer.wrap(v1::GetInteractionRequest {
                interaction_id: id.clone(),
            });
            async move {
                let i = history.get_interaction(req).await.ok()?.into_inner();
                // Email and SMS: the customer's message and the reply, sent.
                let messages_in = *channel == v1::Channel::Desk as i32
                    || i.messages.iter().any(|m| {
                        m.direction == v1::Direction::Outbound as i32 && m.status != "queued"
                    });
                (i.status == "completed" && messages_in).then_some(i)
            }
        })
        .await;
        if *channel != v1::Channel::Desk as i32 {
            assert_eq!(
                &record.conversation_id, id,
                "an email or SMS conversation is named by its interaction's UUID"
            );
        }
        if *channel == v1::Channel::Email as i32 {
            let customer = history
                .clone()
                .get_customer(bearer.wrap(v1::GetCustomerRequest {
                    customer_id: record.customer_id.clone(),
                }))
                .await
                .expect("the sender is a customer")
                .into_inner();
            assert_eq!(
                customer.display_name, "Nicolò Bianchi",
                "the sender's display name names the customer"
            );
        }
    }
    eventually(WAIT, "the SMTP server got the reply", || async {
        (!smtp.messages().is_empty()).then_some(())
    })
    .await;

    // Nothing any consumer refused.
    let mut dead = Vec::new();
    for consumer in &centralino::consumer_names() {
        for d in bus.dead_letters(consumer, 100).await.expect("dead letters") {
            dead.push(format!(
                "{consumer}: {} ({}) from {}",
                d.routing_key, d.envelope.event_type, d.envelope.source
            ));
        }
    }
    assert_eq!(dead, Vec::<String>::new(), "no dead letters anywhere");

    // A call, an email, an SMS and a ticket, and not one number, address,
    // name or text of theirs in the log (rsipstack alone logged the caller's
    // number 14 times a call).
    let text = String::from_utf8_lossy(&log.0.lock().expect("log").clone()).into_owned();
    assert!(
        text.contains("email: mailbox connected"),
        "the log is captured:\n{text}"
    );
    let leaked: Vec<&str> = PERSONAL
        .iter()
        .copied()
        .filter(|p| text.contains(p))
        .collect();
    assert!(
        leaked.is_empty(),
        "personal data in the log: {leaked:?}\n{text}"
    );

    tapping.abort();
    drop(desktop);
    let _ = stop.send(());
    let _ = running.task.await;
    let _ = std::fs::remove_dir_all(dir);
}
