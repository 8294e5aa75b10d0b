//! `centralino up` with a `[desk]` section, in the embedded mode (in-process
//! bus, SQLite): a kiosk ticket is routed to the agent who opened a counter,
//! called there, shown on the board, and the call is in history.

use std::time::Duration;

use centralino_auth::Role;
use centralino_proto::v1;
use centralino_proto::v1::agent_request::Action;
use centralino_test_support::agent::{Desk, authed, channel, configure, offer_id};
use centralino_test_support::eventually;

use crate::email::history_client;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_desk_a_counter_calls_a_kiosk_ticket_and_history_records_it() {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-up-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [desk]\nlisten = \"127.0.0.1:0\"\n\
             [[desk.sites]]\nid = \"casa\"\ntimezone = \"UTC\"\nopens = \"00:00\"\ncloses = \"23:59\"\n\
             counters = [\"1\", \"2\"]\n\
             [[desk.services]]\ncode = \"A\"\nname = \"Payments\"\nqueue = \"desk-a-{{site}}\"\n",
            data = dir.display().to_string(),
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    let http = running.desk_http.expect("the desk runs");
    assert!(
        running
            .services
            .contains(&"centralino.v1.DeskService".to_owned())
    );
    let key = centralino::token_key(&config).expect("key");
    let token = |sub: &str, role| {
        key.mint(sub, role, chrono::Utc::now().timestamp(), 600)
            .expect("token")
    };
    configure(
        running.grpc_addr,
        &token("admin", Role::Admin),
        &[],
        vec![v1::QueueDefinition {
            name: "desk-a-casa".into(),
            channels: vec![v1::Channel::Desk as i32],
            ..Default::default()
        }],
        vec![v1::AgentDefinition {
            name: "anna".into(),
            ..Default::default()
        }],
    )
    .await;

    // The kiosk, which needs its token (kiosk_auth is on by default).
    let client = reqwest::Client::new();
    let kiosk = |authorization: Option<String>| {
        let mut request = client
            .post(format!("http://{http}/api/sites/casa/tickets"))
            .json(&serde_json::json!({ "service": "A", "phone": "+39 347 555 0101" }));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };
    assert_eq!(kiosk(None).await.expect("kiosk").status(), 401);
    let r = kiosk(Some(format!("Bearer {}", token("kiosk-casa", Role::Kiosk))))
        .await
        .expect("kiosk");
    assert_eq!(r.status(), 201);
    let ticket: centralino_desk::TicketView = r.json().await.expect("ticket");
    assert_eq!(ticket.label, "A001");

    // Anna opens counter 2 and calls next.
    let anna = token("anna", Role::Agent);
    v1::desk_service_client::DeskServiceClient::new(channel(running.grpc_addr).await)
        .open_counter(authed(
            v1::OpenCounterRequest {
                site: "casa".into(),
                counter: "2".into(),
            },
            &anna,
        ))
        .await
        .expect("counter opened");
    let (mut desk, _) = Desk::open(running.grpc_addr, &anna).await.expect("session");
    desk.available().await;
    let offered = desk.wait_for(WAIT, offer_id).await.expect("an offer");
    assert_eq!(offered, ticket.id);
    desk.send(Action::Accept(v1::OfferAnswer {
        interaction_id: ticket.id.clone(),
    }))
    .await;
    eventually(WAIT, "A001 called to counter 2 on the board", || async {
        let board: centralino_desk::Board = client
            .get(format!("http://{http}/api/sites/casa/board"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        board
            .called
            .first()
            .filter(|c| c.ticket == "A001" && c.counter == "2")
            .map(|_| ())
    })
    .await;
    let page = client
        .get(format!("http://{http}/sites/casa/board"))
        .send()
        .await
        .expect("board page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("EventSource"));

    // History has the visit with the call.
    let (history, bearer) = history_client(&config, &running).await;
    let record = eventually(WAIT, "the call in history", || {
        let mut history = history.clone();
        let req = bearer.wrap(v1::GetInteractionRequest {
            interaction_id: ticket.id.clone(),
        });
        async move {
            let r = history.get_interaction(req).await.ok()?.into_inner();
            r.steps.iter().any(|s| s.kind == "desk-called").then_some(r)
        }
    })
    .await;
    let called = record
        .steps
        .iter()
        .find(|s| s.kind == "desk-called")
        .expect("step");
    assert_eq!(
        (called.agent.as_str(), called.reason.as_str()),
        ("anna", "A001 at counter 2")
    );
    // A kiosk's token reads no customer data.
    let kiosk = crate::email::Bearer(token("kiosk-casa", Role::Kiosk));
    let denied = history
        .clone()
        .get_interaction(kiosk.wrap(v1::GetInteractionRequest {
            interaction_id: ticket.id.clone(),
        }))
        .await
        .expect_err("a kiosk reads no history");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    drop(desk);
    let _ = stop.send(());
    let _ = running.task.await;
    let _ = std::fs::remove_dir_all(dir);
}
