//! Kiosks taking tickets: numbering, events, errors, restarts, check-ins.

use std::sync::atomic::Ordering;
use std::time::Duration;

use centralino_desk::TicketView;
use centralino_proto::v1;
use centralino_test_support::eventually;

use crate::support::{Env, WAIT, ms};

#[tokio::test(flavor = "multi_thread")]
async fn tickets_are_numbered_per_service_and_start_again_at_local_midnight() {
    // 09:00 in Rome (UTC+1 in January).
    let env = Env::start(ms(2026, 1, 14, 8, 0)).await;
    let a1 = env.take("roma", "A").await;
    let a2 = env.take("roma", "A").await;
    let b1 = env.take("roma", "B").await;
    assert_eq!(
        (a1.label.as_str(), a2.label.as_str(), b1.label.as_str()),
        ("A001", "A002", "B001")
    );
    assert_eq!((a1.position, a2.position, b1.position), (1, 2, 1));
    // Another site counts on its own.
    assert_eq!(env.take("h24", "A").await.label, "A001");
    // 23:30 UTC on the 14th is 00:30 on the 15th in Rome: a new day there.
    env.now.store(ms(2026, 1, 14, 22, 30), Ordering::SeqCst);
    assert_eq!(
        env.take("h24", "A").await.label,
        "A002",
        "still the 14th in Rome"
    );
    env.now.store(ms(2026, 1, 14, 23, 30), Ordering::SeqCst);
    assert_eq!(env.take("h24", "A").await.label, "A001", "the 15th in Rome");
    // Every ticket is an interaction in its service's queue.
    let created = eventually(WAIT, "six interaction.desk.created", || async {
        let c = env.created();
        (c.len() >= 6).then_some(c)
    })
    .await;
    let first = created
        .iter()
        .find(|i| i.id == a1.id)
        .expect("A001's interaction");
    assert_eq!(first.channel, v1::Channel::Desk as i32);
    assert_eq!(first.queue_hint, "payments-roma");
    assert_eq!(first.priority, 10);
    assert_eq!(
        first.attributes.get("desk.ticket").map(String::as_str),
        Some("A001")
    );
    assert_eq!(
        first.attributes.get("desk.site").map(String::as_str),
        Some("roma")
    );
    assert_eq!(
        created
            .iter()
            .find(|i| i.id == b1.id)
            .map(|i| i.queue_hint.as_str()),
        Some("contracts-roma")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn numbering_goes_on_after_a_restart_and_identified_customers_are_linked() {
    let mut env = Env::start(ms(2026, 1, 14, 9, 0)).await;
    env.take("roma", "A").await;
    env.take("roma", "A").await;
    env.halt().await;
    env.launch().await;
    let r = env
        .post(
            "/api/sites/roma/tickets",
            serde_json::json!({ "service": "A", "phone": "+39 347 123 4567" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let t: TicketView = r.json().await.expect("ticket");
    assert_eq!(t.label, "A003", "read back from the database");
    let created = eventually(WAIT, "the identified ticket", || async {
        env.created().into_iter().find(|i| i.id == t.id)
    })
    .await;
    assert_eq!(created.identifiers.len(), 1);
    assert_eq!(created.identifiers[0].value, "+393471234567");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_issue_nothing() {
    let env = Env::start(ms(2026, 1, 14, 9, 0)).await;
    let check = |status: u16, needle: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status().as_u16(), status);
            let body = r.text().await.expect("body");
            assert!(body.contains(needle), "{body}");
        }
    };
    check(404, "site `milano` not found")(
        env.post(
            "/api/sites/milano/tickets",
            serde_json::json!({"service": "A"}),
        )
        .await,
    )
    .await;
    check(404, "service `Z` not found")(
        env.post(
            "/api/sites/roma/tickets",
            serde_json::json!({"service": "Z"}),
        )
        .await,
    )
    .await;
    check(400, "codice_fiscale")(
        env.post(
            "/api/sites/roma/tickets",
            serde_json::json!({"service": "A", "codice_fiscale": "RSSMRA80A01H501X"}),
        )
        .await,
    )
    .await;
    let r = env
        .post(
            "/api/sites/roma/tickets",
            serde_json::json!({"servizio": "A"}),
        )
        .await;
    assert!(
        r.status().is_client_error(),
        "a body that is not a request: {}",
        r.status()
    );
    // 18:00 in Rome: closed, saying when it opens.
    env.now.store(ms(2026, 1, 14, 17, 0), Ordering::SeqCst);
    check(409, "opens at 08:30")(
        env.post(
            "/api/sites/roma/tickets",
            serde_json::json!({"service": "A"}),
        )
        .await,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.created().is_empty(), "nothing was issued");
    // The first good ticket of the day is still number 1.
    env.now.store(ms(2026, 1, 14, 9, 0), Ordering::SeqCst);
    assert_eq!(env.take("roma", "A").await.label, "A001");
    env.stop().await;
}
