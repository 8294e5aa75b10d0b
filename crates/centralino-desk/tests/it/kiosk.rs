//! Kiosks taking tickets: numbering, events, errors, restarts, check-ins.

use std::sync::atomic::Ordering;

use centralino_auth::Role;
use centralino_desk::TicketView;
use centralino_proto::v1;
use centralino_test_support::agent::authed;
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
    let late = env.take("h24", "A").await;
    assert_eq!(late.label, "A002", "still the 14th in Rome");
    env.now.store(ms(2026, 1, 14, 23, 30), Ordering::SeqCst);
    assert_eq!(env.take("h24", "A").await.label, "A001", "the 15th in Rome");
    // The 14th's tickets nobody served are closed with the day, and routing
    // is told they left.
    eventually(WAIT, "yesterday's ticket closed", || async {
        (env.ticket(&late.id).await.state == "closed").then_some(())
    })
    .await;
    let left = eventually(WAIT, "its abandonment", || async {
        env.published()
            .iter()
            .filter_map(|e| centralino_bus::EnvelopeExt::decode::<v1::InteractionAbandoned>(e).ok())
            .find(|a| a.interaction_id == late.id)
    })
    .await;
    assert_eq!(left.reason, "site-closed");
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
    // Kiosk writes need a kiosk's token: none, a forged one and an agent's
    // are refused, saying why.
    env.now.store(ms(2026, 1, 14, 9, 30), Ordering::SeqCst);
    let ticket = serde_json::json!({"service": "A", "phone": "+39 347 000 2222"});
    let r = env
        .post_with("/api/sites/roma/tickets", ticket.clone(), None)
        .await;
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    check(401, "missing bearer token")(r).await;
    let forged = centralino_auth::TokenKey::new(b"someone-else-s-secret-0123456789ab".to_vec())
        .expect("key")
        .mint(
            "kiosk-1",
            Role::Integrator,
            chrono::Utc::now().timestamp(),
            600,
        )
        .expect("token");
    check(401, "invalid token signature")(
        env.post_with(
            "/api/sites/roma/tickets",
            ticket.clone(),
            Some(&format!("Bearer {forged}")),
        )
        .await,
    )
    .await;
    let agent = env.token("anna", Role::Agent);
    check(403, "use a kiosk token")(
        env.post_with(
            "/api/sites/roma/tickets",
            ticket.clone(),
            Some(&format!("Bearer {agent}")),
        )
        .await,
    )
    .await;
    check(401, "missing bearer token")(
        env.post_with(
            "/api/sites/roma/check-in",
            serde_json::json!({"code": "ABCDEF"}),
            None,
        )
        .await,
    )
    .await;
    // The first good ticket of the day is still number 1.
    env.now.store(ms(2026, 1, 14, 9, 0), Ordering::SeqCst);
    let good = env.take("roma", "A").await;
    assert_eq!(good.label, "A001");
    // Sentinel: the good ticket's interaction leaves the desk's one outbox,
    // relayed in order, after anything a refused request could have issued.
    let created = eventually(WAIT, "the good ticket's interaction", || async {
        let c = env.created();
        c.iter().any(|i| i.id == good.id).then_some(c)
    })
    .await;
    assert_eq!(created.len(), 1, "nothing was issued: {created:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn booked_customers_check_in_once_with_priority() {
    // 10:00 in Rome.
    let env = Env::start(ms(2026, 1, 14, 9, 0)).await;
    let mut client = env.desk_client().await;
    let token = env.token("booking-site", Role::Integrator);
    let slot = |h: u32, m: u32| {
        Some(prost_types::Timestamp {
            seconds: ms(2026, 1, 14, h, m) / 1_000,
            nanos: 0,
        })
    };
    let book = |starts, ends| v1::BookAppointmentRequest {
        site: "roma".into(),
        service: "A".into(),
        starts_at: starts,
        ends_at: ends,
        phone: "+39 347 765 4321".into(),
        ..Default::default()
    };
    // 10:15–10:30 local.
    let now_slot = client
        .book_appointment(authed(book(slot(9, 15), slot(9, 30)), &token))
        .await
        .expect("booked")
        .into_inner();
    assert_eq!(now_slot.code.len(), 6);
    let later = client
        .book_appointment(authed(book(slot(12, 0), slot(12, 15)), &token))
        .await
        .expect("booked")
        .into_inner();
    let err = client
        .book_appointment(authed(book(slot(12, 0), slot(11, 0)), &token))
        .await
        .expect_err("ends before it starts");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("ends_at"), "{}", err.message());

    let check_in = |code: String| {
        let env = &env;
        async move {
            env.post(
                "/api/sites/roma/check-in",
                serde_json::json!({ "code": code }),
            )
            .await
        }
    };
    // A walk-in first, then the booked customer (15 minutes early).
    let walk_in = env.take("roma", "A").await;
    let r = check_in(now_slot.code.to_lowercase()).await;
    assert_eq!(r.status(), 201, "codes are not case-sensitive");
    let booked: TicketView = r.json().await.expect("ticket");
    assert_eq!(booked.label, "A002");
    // Before routing has any figure, the ticket's place already counts the
    // booking's priority: ahead of the walk-in who came first.
    assert_eq!(walk_in.position, 1);
    assert_eq!(booked.position, 1, "booked customers go first");
    assert_eq!(env.ticket(&walk_in.id).await.position, 2);
    let created = eventually(WAIT, "the booked ticket's interaction", || async {
        env.created().into_iter().find(|i| i.id == booked.id)
    })
    .await;
    assert_eq!(
        created.priority, 60,
        "the service's 10 plus the appointment's 50"
    );
    assert_eq!(
        created.attributes.get("desk.appointment"),
        Some(&now_slot.id)
    );
    assert_eq!(created.identifiers.len(), 1, "the phone given when booking");
    let walk = env
        .created()
        .into_iter()
        .find(|i| i.id == walk_in.id)
        .expect("walk-in");
    assert_eq!(walk.priority, 10);
    // A second check-in, an unknown code, too early.
    let r = check_in(now_slot.code.clone()).await;
    assert_eq!(r.status(), 409);
    let body = r.text().await.expect("body");
    assert!(body.contains("already checked in (ticket A002)"), "{body}");
    let r = check_in("ZZZZZZ".into()).await;
    assert_eq!(r.status(), 404);
    let r = check_in(later.code.clone()).await;
    assert_eq!(r.status(), 409);
    let body = r.text().await.expect("body");
    assert!(body.contains("too early"), "{body}");
    let r = env
        .post(
            "/api/sites/roma/check-in",
            serde_json::json!({ "codice": "X" }),
        )
        .await;
    assert_eq!(r.status(), 400);
    // The kiosk's view of the site.
    let site: centralino_desk::SiteInfo = env
        .client
        .get(format!("http://{}/api/sites/roma", env.http))
        .send()
        .await
        .expect("site")
        .json()
        .await
        .expect("site JSON");
    assert!(site.open);
    assert_eq!(
        (site.opens.as_str(), site.closes.as_str()),
        ("08:30", "17:00")
    );
    assert_eq!(
        site.services
            .iter()
            .find(|s| s.service == "A")
            .map(|s| s.waiting),
        Some(2)
    );
    env.stop().await;
}
