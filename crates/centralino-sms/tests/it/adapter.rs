//! The whole adapter: RabbitMQ, PostgreSQL or SQLite, the SMSC simulator,
//! signed webhooks, a provider's REST API, and history for the consent ledger.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use centralino_proto::v1;
use centralino_sms::rest::RestConfig;
use centralino_sms::webhook::WebhookConfig;
use centralino_sms::{NumberConfig, WebhookListen};
use centralino_test_support::mail::free_port;
use centralino_test_support::{TestDatabase, eventually};

use crate::support::{Env, OURS, WAIT, config};
use crate::webhook::{TOKEN, post};

const PHONE: &str = "393331234567";
const E164: &str = "+393331234567";

async fn created_one(env: &Env) -> v1::Interaction {
    eventually(WAIT, "an interaction", || async {
        env.created().into_iter().next()
    })
    .await
}

async fn status(env: &Env, id: &str, want: &str) -> String {
    eventually(WAIT, &format!("message status {want}"), || async {
        env.statuses(id)
            .into_iter()
            .find(|(s, _)| s == want)
            .map(|(_, e)| e)
    })
    .await
}

/// Inbound → interaction in the number's queue; a second message → the same
/// interaction; a reply → exact segments at the SMSC → queued, sent, delivered;
/// an undeliverable number → failed with the SMSC's error; a repeated command
/// sends nothing more; a reply to no conversation fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_over_smpp() {
    let mut env = Env::smpp().await;
    env.start().await;
    env.mo(PHONE, "Buongiorno, la bolletta è sbagliata").await;
    let interaction = created_one(&env).await;
    assert_eq!(interaction.queue_hint, "sms-support");
    assert_eq!(interaction.priority, 20);
    assert_eq!(interaction.identifiers.len(), 1);
    assert_eq!(interaction.identifiers[0].value, E164, "E.164");
    let id = interaction.id.clone();

    env.mo(PHONE, "Il codice cliente è 1234").await;
    let inbound = eventually(WAIT, "two inbound messages", || async {
        let m: Vec<_> = env
            .messages()
            .into_iter()
            .filter(|m| m.direction == v1::Direction::Inbound as i32)
            .collect();
        (m.len() == 2).then_some(m)
    })
    .await;
    assert!(inbound.iter().all(|m| m.interaction_id == id));
    assert_eq!(inbound[1].body, "Il codice cliente è 1234");
    assert_eq!(inbound[1].sender, E164);
    assert_eq!(env.created().len(), 1, "a follow-up opens nothing");

    let body = format!("{} costa 10€", "a".repeat(150));
    let reply = env.send(&id, "", "", &body).await;
    let parts = eventually(WAIT, "two parts at the SMSC", || async {
        let p: Vec<_> = env
            .submitted()
            .into_iter()
            .filter(|p| p["destination"] == PHONE)
            .collect();
        (p.len() == 2).then_some(p)
    })
    .await;
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["data_coding"], 0, "GSM 03.38");
        assert_eq!(p["destination_ton"], 1, "international");
        assert_eq!(p["udh"][3], 2);
        assert_eq!(p["udh"][4], i + 1);
    }
    let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
    assert_eq!(text, body);
    status(&env, &reply, "delivered").await;
    let order: Vec<String> = env.statuses(&reply).into_iter().map(|(s, _)| s).collect();
    assert_eq!(order, ["queued", "sent", "delivered"]);
    let recorded = env
        .messages()
        .into_iter()
        .find(|m| m.message_id == reply)
        .expect("the reply recorded");
    assert_eq!(recorded.attributes["sms.segments"], "2");
    assert_eq!(recorded.attributes["sms.encoding"], "gsm7");
    assert_eq!(recorded.recipient, E164);

    // A 71-character UCS-2 text (an emoji switches the whole message).
    let emoji = format!("{}😀", "b".repeat(69));
    let ucs = env.send(&id, "", "", &emoji).await;
    status(&env, &ucs, "sent").await;
    let recorded = eventually(WAIT, "the UCS-2 reply recorded", || async {
        env.messages().into_iter().find(|m| m.message_id == ucs)
    })
    .await;
    assert_eq!(recorded.attributes["sms.encoding"], "ucs2");
    assert_eq!(recorded.attributes["sms.segments"], "2");

    // The same command again sends nothing more.
    env.command(
        "sms.send",
        &v1::SendMessage {
            message_id: reply.clone(),
            interaction_id: id.clone(),
            channel: v1::Channel::Sms as i32,
            body: body.clone(),
            ..Default::default()
        },
    )
    .await;
    // A customer whose network rejects every message.
    env.mo("390001234567", "Mi richiamate?").await;
    let bad = eventually(WAIT, "a second conversation", || async {
        env.created().into_iter().find(|i| i.id != id)
    })
    .await;
    let undeliverable = env.send(&bad.id, "", "", "Certo, a breve.").await;
    let error = status(&env, &undeliverable, "failed").await;
    assert!(error.contains("UNDELIV"), "{error}");

    let lost = env
        .send(&uuid::Uuid::now_v7().to_string(), "", "", "Pronto?")
        .await;
    let error = status(&env, &lost, "failed").await;
    assert!(error.contains("no SMS conversation"), "{error}");
    assert_eq!(
        env.submitted_to(PHONE).len(),
        4,
        "2 + 2 parts; the repeat sent nothing"
    );
    assert_eq!(env.statuses(&reply).len(), 3);
    env.stop().await;
}

/// STOP: answered, recorded in history's ledger, and every later
/// non-transactional send blocked, replies included until the customer writes
/// again; START undoes it; HELP is answered. A consent recorded elsewhere
/// (history's `consent.sms.changed`) blocks sends within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_out_is_honoured_everywhere() {
    let mut env = Env::smpp().await;
    env.start_history().await;
    env.start().await;
    env.mo(PHONE, "Ciao").await;
    let id = created_one(&env).await.id;

    env.mo(PHONE, "  Stop ").await;
    let stop_reply = env.config.stop_reply.clone().expect("a stop reply");
    eventually(WAIT, "the opt-out confirmed", || async {
        env.submitted_to(PHONE).contains(&stop_reply).then_some(())
    })
    .await;
    eventually(WAIT, "the opt-out in history's ledger", || async {
        let n = env
            .sql_count(
                "SELECT COUNT(*) FROM history_consents \
                 WHERE channel = 'sms' AND purpose = 'all' AND state = 'revoked' \
                 AND source = 'sms-keyword' AND recorded_by = 'sms'",
            )
            .await;
        (n == 1).then_some(())
    })
    .await;
    // Notifications are about another interaction (a desk ticket, say).
    let ticket = uuid::Uuid::now_v7().to_string();
    let promo = env
        .send(&ticket, "+39 333 123 4567", "notifications", "Offerta!")
        .await;
    let error = status(&env, &promo, "failed").await;
    assert!(error.contains("opted out"), "{error}");
    let reply = env.send(&id, "", "", "Ci dispiace vederla andare").await;
    let error = status(&env, &reply, "failed").await;
    assert!(error.contains("opted out"), "{error}");
    let code = env
        .send(&ticket, E164, "transactional", "Codice: 123456")
        .await;
    status(&env, &code, "sent").await;

    // The customer writes again: replies to them go out.
    env.mo(PHONE, "Però ho ancora una domanda").await;
    eventually(WAIT, "the follow-up", || async {
        env.messages()
            .iter()
            .any(|m| m.body == "Però ho ancora una domanda")
            .then_some(())
    })
    .await;
    let reply = env.send(&id, "", "", "Mi dica").await;
    status(&env, &reply, "sent").await;
    let promo2 = env.send(&ticket, E164, "notifications", "Offerta 2").await;
    status(&env, &promo2, "failed").await;

    env.mo(PHONE, "START").await;
    eventually(WAIT, "the opt-in confirmed", || async {
        env.submitted_to(PHONE)
            .contains(&"ACME: welcome back.".to_owned())
            .then_some(())
    })
    .await;
    let promo3 = env.send(&ticket, E164, "notifications", "Offerta 3").await;
    status(&env, &promo3, "sent").await;
    env.mo(PHONE, "help").await;
    eventually(WAIT, "the HELP answer", || async {
        env.submitted_to(PHONE)
            .contains(&env.config.help_reply)
            .then_some(())
    })
    .await;
    let sent = env.submitted_to(PHONE);
    for blocked in ["Offerta!", "Ci dispiace vederla andare", "Offerta 2"] {
        assert!(!sent.iter().any(|t| t == blocked), "{blocked} was sent");
    }

    // An opt-out recorded through history (an agent, a web form): senders
    // block on it within a second.
    let other = "+393479876543";
    let started = Instant::now();
    env.command(
        "history.record_consent",
        &v1::RecordConsentRequest {
            request_id: "web-form-1".into(),
            identifier: Some(v1::CustomerIdentifier {
                kind: v1::customer_identifier::Kind::Phone as i32,
                value: "347 987 6543".into(),
            }),
            channel: v1::Channel::Sms as i32,
            purpose: "marketing".into(),
            state: v1::ConsentState::Revoked as i32,
            source: "web-form".into(),
            ..Default::default()
        },
    )
    .await;
    eventually(WAIT, "the opt-out known to the adapter", || async {
        let n = env
            .sql_count(&format!(
                "SELECT COUNT(*) FROM sms_consents WHERE phone = '{other}' \
                 AND purpose = 'marketing' AND revoked"
            ))
            .await;
        (n == 1).then_some(())
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "blocked after {took:?}");
    let marketing = env.send(&ticket, other, "marketing", "Saldi").await;
    let error = status(&env, &marketing, "failed").await;
    assert!(error.contains("opted out"), "{error}");
    let notice = env
        .send(&ticket, other, "notifications", "Il suo turno")
        .await;
    status(&env, &notice, "sent").await;

    // A notification about no interaction at all gets its outcome too, on
    // the bus, addressed by its message id: blocked by the opt-out here.
    let bare = env.send("", other, "marketing", "Saldi di fine anno").await;
    let error = status(&env, &bare, "failed").await;
    assert!(error.contains("opted out"), "{error}");
    assert!(
        env.events::<v1::MessageStatusChanged>("interaction.sms.message_status")
            .iter()
            .filter(|s| s.message_id == bare)
            .all(|s| s.interaction_id.is_empty()),
        "it names no interaction"
    );
    // A command whose message id is not a UUID is answered, not dropped.
    env.command(
        "sms.send",
        &v1::SendMessage {
            message_id: "crm-42".into(),
            channel: v1::Channel::Sms as i32,
            body: "Promemoria".into(),
            recipient: other.into(),
            purpose: "transactional".into(),
            ..Default::default()
        },
    )
    .await;
    let error = status(&env, "crm-42", "failed").await;
    assert!(error.contains("message_id: not a UUID"), "{error}");
    env.stop().await;
}

/// The SMSC goes away with messages to send and the adapter crashes too:
/// once both are back every message leaves exactly once, and in the order
/// they were sent: while the first one waits for the SMSC, the ones behind it
/// are not tried (a failed try must not put it behind newer messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smsc_restart_loses_no_outbound_message_and_keeps_the_order() {
    let mut env = Env::smpp().await;
    env.start().await;
    env.mo(PHONE, "Salve").await;
    let id = created_one(&env).await.id;
    env.smsc.as_mut().expect("smsc").kill();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(env.send(&id, "", "", &format!("Risposta {i}")).await);
    }
    eventually(
        WAIT,
        "the first message tried twice while the SMSC is down",
        || async {
            let n = env
                .sql_count(
                    "SELECT COUNT(*) FROM sms_outbound WHERE attempts >= 2 AND status = 'queued'",
                )
                .await;
            (n >= 1).then_some(())
        },
    )
    .await;
    assert_eq!(
        env.sql_count("SELECT COUNT(*) FROM sms_outbound WHERE attempts >= 1")
            .await,
        1,
        "only the oldest message to the customer is tried"
    );
    env.crash();
    for i in 5..8 {
        ids.push(env.send(&id, "", "", &format!("Risposta {i}")).await);
    }
    env.smsc.as_mut().expect("smsc").resume();
    env.start().await;
    for m in &ids {
        status(&env, m, "delivered").await;
    }
    let texts = env.submitted_to(PHONE);
    let want: Vec<String> = (0..8).map(|i| format!("Risposta {i}")).collect();
    assert_eq!(texts, want, "each message once, in order");
    // Cut the connection under it: it binds again and carries on.
    env.smsc().drop_connections();
    let after = env.send(&id, "", "", "Dopo il taglio").await;
    status(&env, &after, "delivered").await;
    env.stop().await;
}

/// (authorization header, form) of every request the provider got.
type Requests = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A provider's REST API, Twilio's shape, that refuses what asks for it and
/// fails once with a 500 on what asks for that.
struct Provider {
    base: String,
    requests: Requests,
    task: tokio::task::JoinHandle<()>,
}

impl Provider {
    /// Takes the API down: its port refuses connections.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn provider() -> Provider {
    provider_at(0, Requests::default()).await
}

/// The provider's API on `port` (0: any), recording into `requests`.
async fn provider_at(port: u16, requests: Requests) -> Provider {
    use axum::http::StatusCode;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/2010-04-01/Accounts/AC123/Messages.json",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    let form: Vec<(String, String)> = form_urlencoded::parse(&body)
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let text = form
                        .iter()
                        .find(|(k, _)| k == "Body")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    let mut seen = seen.lock().expect("requests");
                    seen.push((auth, form));
                    let n = seen.len();
                    if text.contains("refuse") {
                        return (
                            StatusCode::BAD_REQUEST,
                            r#"{"code":21211,"message":"The 'To' number is not valid"}"#.to_owned(),
                        );
                    }
                    let tries = seen
                        .iter()
                        .filter(|(_, f)| f.iter().any(|(k, v)| k == "Body" && *v == text))
                        .count();
                    if text.contains("flaky") && tries == 1 {
                        return (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_owned());
                    }
                    (
                        StatusCode::CREATED,
                        format!(r#"{{"sid":"SM{n:032}","status":"queued"}}"#),
                    )
                }
            },
        ),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Provider {
        base,
        requests,
        task,
    }
}

/// However long the provider's API was unreachable, a message waiting for it
/// leaves within 10 s of its return: the wait stops growing at 5 s while the
/// provider cannot be reached (it grew to a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_long_provider_outage_messages_leave_within_10_s_of_its_return() {
    let provider_port = free_port();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut config = config();
    config.retry_base = Duration::from_secs(2);
    config.webhook = Some(WebhookListen {
        listen: ([127, 0, 0, 1], port).into(),
        webhook: WebhookConfig {
            public_base_url: base.clone(),
            path: "/sms/twilio".into(),
            auth_token: TOKEN.into(),
        },
    });
    config.rest = Some(RestConfig {
        base_url: format!("http://127.0.0.1:{provider_port}"),
        account_sid: "AC123".into(),
        auth_token: "rest-token".into(),
        status_callback: None,
        timeout: Duration::from_secs(5),
    });
    let mut env = Env::new(TestDatabase::sqlite(), config).await;
    env.start().await;
    let requests = Requests::default();
    // A short outage, then a long one: long enough for a doubling wait to pass 15 s.
    for (round, outage) in [(1, 2), (2, 16)] {
        let id = env
            .send(
                "",
                "+393471112233",
                "transactional",
                &format!("Codice {round}"),
            )
            .await;
        tokio::time::sleep(Duration::from_secs(outage)).await;
        let provider = provider_at(provider_port, requests.clone()).await;
        let back = Instant::now();
        status(&env, &id, "sent").await;
        let took = back.elapsed();
        println!("rest: {outage} s outage: message sent {took:?} after the provider's return");
        assert!(
            took < Duration::from_secs(10),
            "sent {took:?} after the provider came back from a {outage} s outage"
        );
        provider.stop().await;
    }
    assert_eq!(
        requests.lock().expect("requests").len(),
        2,
        "each sent once"
    );
    env.stop().await;
}

/// Webhooks in (signed by the `twilio` package; a retry is one message; a
/// forged one is refused), replies out through the REST API, status callbacks
/// back; on SQLite, as the embedded mode runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_rest_on_sqlite() {
    let provider = provider().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut config = config();
    config.numbers.push(NumberConfig {
        number: "+390212345678".into(),
        queue: "sms-sales".into(),
        priority: 30,
    });
    config.webhook = Some(WebhookListen {
        listen: ([127, 0, 0, 1], port).into(),
        webhook: WebhookConfig {
            public_base_url: base.clone(),
            path: "/sms/twilio".into(),
            auth_token: TOKEN.into(),
        },
    });
    config.rest = Some(RestConfig {
        base_url: provider.base.clone(),
        account_sid: "AC123".into(),
        auth_token: "rest-token".into(),
        status_callback: Some(format!("{base}/sms/twilio/status")),
        timeout: Duration::from_secs(5),
    });
    let mut env = Env::new(TestDatabase::sqlite(), config).await;
    env.start().await;
    let inbound = format!("{base}/sms/twilio/inbound");
    let message = [
        "MessageSid=SM0001",
        "AccountSid=AC123",
        "From=+393471112233",
        "To=+390212345678",
        "Body=Vorrei disdire il contratto",
    ];
    let (code, body) = post(inbound.clone(), &[], &message).await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = post(inbound.clone(), &[], &message).await;
    assert_eq!(code, 200, "a provider's retry is acknowledged");
    let (code, _) = post(inbound.clone(), &["--sign-with", "wrong"], &message).await;
    assert_eq!(code, 403);
    let interaction = created_one(&env).await;
    assert_eq!(interaction.queue_hint, "sms-sales");
    eventually(WAIT, "the message recorded", || async {
        (env.messages().len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        env.sql_count("SELECT COUNT(*) FROM sms_messages WHERE direction = 'inbound'")
            .await,
        1,
        "the retry is the same message"
    );

    let reply = env
        .send(
            &interaction.id,
            "",
            "",
            "Ci può indicare il codice cliente?",
        )
        .await;
    status(&env, &reply, "sent").await;
    let (auth, form) = provider
        .requests
        .lock()
        .expect("requests")
        .first()
        .cloned()
        .expect("a request");
    assert!(auth.starts_with("Basic "), "{auth}");
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("To"), "+393471112233");
    assert_eq!(field("From"), "+390212345678");
    assert_eq!(field("StatusCallback"), format!("{base}/sms/twilio/status"));
    let sid = format!("SM{:032}", 1);
    let (code, _) = post(
        format!("{base}/sms/twilio/status"),
        &[],
        &[
            &format!("MessageSid={sid}"),
            "MessageStatus=delivered",
            "AccountSid=AC123",
        ],
    )
    .await;
    assert_eq!(code, 200);
    status(&env, &reply, "delivered").await;

    let refused = env.send(&interaction.id, "", "", "please refuse").await;
    let error = status(&env, &refused, "failed").await;
    assert!(error.contains("21211"), "{error}");
    let flaky = env.send(&interaction.id, "", "", "flaky network").await;
    status(&env, &flaky, "sent").await;
    let tries = provider
        .requests
        .lock()
        .expect("requests")
        .iter()
        .filter(|(_, f)| f.iter().any(|(_, v)| v == "flaky network"))
        .count();
    assert_eq!(tries, 2, "a 500 is retried");
    let _ = OURS;
    env.stop().await;
}
