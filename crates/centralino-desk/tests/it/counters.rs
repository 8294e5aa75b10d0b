//! Counters calling tickets through the real router: order by skill and
//! priority, recall and no-show, transfer keeping the place, the board.

use std::sync::atomic::Ordering;
use std::time::Duration;

use centralino_auth::Role;
use centralino_bus::EnvelopeExt as _;
use centralino_desk::Board;
use centralino_proto::v1;
use centralino_proto::v1::agent_request::Action;
use centralino_proto::v1::agent_update::Update;
use centralino_proto::v1::desk_ticket_event::Kind;
use centralino_test_support::agent::{Desk, authed, configure, offer_id, skill_level};
use centralino_test_support::eventually;

use crate::support::{Env, WAIT};

fn queue(name: &str, skill: &str) -> v1::QueueDefinition {
    v1::QueueDefinition {
        name: name.into(),
        channels: vec![v1::Channel::Desk as i32],
        skills: vec![skill_level(skill, 1)],
        ..Default::default()
    }
}

fn agent(name: &str, skills: &[&str]) -> v1::AgentDefinition {
    v1::AgentDefinition {
        name: name.into(),
        display_name: name.to_uppercase(),
        skills: skills.iter().map(|s| skill_level(s, 3)).collect(),
        capacity: vec![],
    }
}

/// Routing for the always-open site: one queue per service, each with its skill.
async fn routing(env: &Env) {
    configure(
        env.grpc,
        &env.token("admin", Role::Admin),
        &["payments", "contracts", "info"],
        vec![
            queue("payments-h24", "payments"),
            queue("contracts-h24", "contracts"),
            queue("info-h24", "info"),
        ],
        vec![
            agent("anna", &["payments", "contracts"]),
            agent("bruno", &["contracts"]),
            agent("carla", &["info"]),
            agent("dario", &["payments"]),
        ],
    )
    .await;
}

/// Waits until routing holds `n` interactions waiting in `queue`.
async fn routed(env: &Env, queue: &str, n: usize) {
    let token = env.token("sup", Role::Supervisor);
    eventually(WAIT, "routing has the tickets", || async {
        let mut sup = v1::supervisor_service_client::SupervisorServiceClient::new(
            centralino_test_support::agent::channel(env.grpc).await,
        );
        let waiting = sup
            .list_waiting(authed(
                v1::ListWaitingRequest {
                    queue: queue.into(),
                },
                &token,
            ))
            .await
            .ok()?
            .into_inner()
            .waiting;
        (waiting.len() == n).then_some(())
    })
    .await;
}

/// The agent's desktop, available, and the first offer it gets.
async fn available(env: &Env, name: &str) -> (Desk, String) {
    let (mut desk, _) = Desk::open(env.grpc, &env.token(name, Role::Agent))
        .await
        .expect("session");
    desk.available().await;
    let offered = desk
        .wait_for(WAIT, offer_id)
        .await
        .unwrap_or_else(|| panic!("{name} gets an offer"));
    (desk, offered)
}

/// "Call next": accepting the offer calls the ticket to the agent's counter.
async fn call(env: &Env, desk: &mut Desk, id: &str, counter: &str) {
    desk.send(Action::Accept(v1::OfferAnswer {
        interaction_id: id.into(),
    }))
    .await;
    eventually(WAIT, "the ticket is called to the counter", || async {
        let t = env.ticket(id).await;
        (t.state == "called" && t.counter.as_deref() == Some(counter)).then_some(())
    })
    .await;
}

#[derive(Clone, Copy)]
enum Op {
    Recall,
    Start,
    NoShow,
}

/// A counter action by `agent` on ticket `id`.
async fn counter_call(
    env: &Env,
    agent: &str,
    id: &str,
    op: Op,
) -> Result<v1::DeskTicket, tonic::Status> {
    let mut client = env.desk_client().await;
    let req = authed(
        v1::TicketRequest {
            interaction_id: id.into(),
        },
        &env.token(agent, Role::Agent),
    );
    match op {
        Op::Recall => client.recall(req).await,
        Op::Start => client.start_service(req).await,
        Op::NoShow => client.no_show(req).await,
    }
    .map(tonic::Response::into_inner)
}

async fn board(env: &Env, site: &str) -> Board {
    env.client
        .get(format!("http://{}/api/sites/{site}/board", env.http))
        .send()
        .await
        .expect("board")
        .json()
        .await
        .expect("board JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_call_by_skill_and_priority_recall_no_show_and_transfer_keeping_the_place() {
    let env = Env::start(chrono::Utc::now().timestamp_millis()).await;
    routing(&env).await;
    let b1 = env.take("h24", "B").await;
    let a1 = env.take("h24", "A").await;
    let a2 = env.take("h24", "A").await;
    let c1 = env.take("h24", "C").await;
    routed(&env, "payments-h24", 2).await;
    routed(&env, "contracts-h24", 1).await;
    routed(&env, "info-h24", 1).await;
    env.open_counter("anna", "h24", "1").await;
    env.open_counter("bruno", "h24", "2").await;

    // Counter errors: an unknown counter, a taken one.
    let mut client = env.desk_client().await;
    let err = client
        .open_counter(authed(
            v1::OpenCounterRequest {
                site: "h24".into(),
                counter: "9".into(),
            },
            &env.token("carla", Role::Agent),
        ))
        .await
        .expect_err("no counter 9");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    let err = client
        .open_counter(authed(
            v1::OpenCounterRequest {
                site: "h24".into(),
                counter: "1".into(),
            },
            &env.token("carla", Role::Agent),
        ))
        .await
        .expect_err("anna sits at 1");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("anna"), "{}", err.message());

    // Anna (payments and contracts) gets A001 before the older B001: priority.
    let (mut anna, offered) = available(&env, "anna").await;
    assert_eq!(offered, a1.id, "the payments ticket first (priority 10)");
    call(&env, &mut anna, &a1.id, "1").await;
    // Bruno (contracts only) gets B001.
    let (mut bruno, offered) = available(&env, "bruno").await;
    assert_eq!(offered, b1.id);
    call(&env, &mut bruno, &b1.id, "2").await;
    let shown = board(&env, "h24").await;
    assert_eq!(
        shown
            .called
            .iter()
            .map(|c| (c.ticket.as_str(), c.counter.as_str()))
            .collect::<Vec<_>>(),
        vec![("B001", "2"), ("A001", "1")],
        "newest call first"
    );

    // Bruno cannot act on Anna's ticket.
    let err = counter_call(&env, "bruno", &a1.id, Op::Recall)
        .await
        .expect_err("not bruno's");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    // Anna recalls twice; the third time it is a no-show.
    for n in 1..=2 {
        let t = counter_call(&env, "anna", &a1.id, Op::Recall)
            .await
            .expect("recall");
        assert_eq!((t.state.as_str(), t.recalls), ("called", n));
    }
    let t = counter_call(&env, "anna", &a1.id, Op::Recall)
        .await
        .expect("recall");
    assert_eq!(t.state, "no-show");
    // Routing tells Anna the customer left; she completes it.
    anna.wait_for(WAIT, |u| {
        matches!(u, Update::CustomerLeft(c) if c.interaction_id == a1.id).then_some(())
    })
    .await
    .expect("customer left");
    anna.send(Action::Complete(v1::CompleteInteraction {
        interaction_id: a1.id.clone(),
        disposition: "no-show".into(),
        ..Default::default()
    }))
    .await;
    // Next for Anna: A002, started and served.
    let next = anna.wait_for(WAIT, offer_id).await.expect("next offer");
    assert_eq!(next, a2.id);
    call(&env, &mut anna, &a2.id, "1").await;
    let t = counter_call(&env, "anna", &a2.id, Op::Start)
        .await
        .expect("start");
    assert_eq!(t.state, "serving");
    anna.send(Action::Complete(v1::CompleteInteraction {
        interaction_id: a2.id.clone(),
        disposition: "paid".into(),
        ..Default::default()
    }))
    .await;
    eventually(WAIT, "A002 served", || async {
        let t = env.ticket(&a2.id).await;
        (t.state == "served" && t.disposition == "paid").then_some(())
    })
    .await;

    // Bruno transfers B001 to information: it keeps its number and goes
    // ahead of C001, which came later.
    bruno
        .send(Action::Transfer(v1::TransferInteraction {
            interaction_id: b1.id.clone(),
            queue: "info-h24".into(),
        }))
        .await;

    eventually(WAIT, "B001 waits for information", || async {
        let t = env.ticket(&b1.id).await;
        (t.state == "waiting" && t.service == "C").then_some(t)
    })
    .await;
    assert_eq!(env.ticket(&b1.id).await.label, "B001");
    env.open_counter("carla", "h24", "3").await;
    let (mut carla, offered) = available(&env, "carla").await;
    assert_eq!(offered, b1.id, "the transferred ticket keeps its place");
    call(&env, &mut carla, &b1.id, "3").await;
    // Routing's new places reach the desk after the call itself.
    eventually(WAIT, "C001 first in line", || async {
        let t = env.ticket(&c1.id).await;
        (t.state == "waiting" && t.position == 1).then_some(())
    })
    .await;

    // The events, in order.
    let events = eventually(WAIT, "every desk event", || async {
        let e = env.desk_events(&b1.id);
        (e.len() >= 3).then_some(e)
    })
    .await;
    assert_eq!(
        events,
        vec![
            (Kind::Called, "2".to_owned()),
            (Kind::Transferred, String::new()),
            (Kind::Called, "3".to_owned()),
        ]
    );
    let events = eventually(WAIT, "A001's events", || async {
        let e = env.desk_events(&a1.id);
        (e.len() >= 4).then_some(e)
    })
    .await;
    assert_eq!(
        events.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![Kind::Called, Kind::Recalled, Kind::Recalled, Kind::NoShow]
    );
    let a2_events = eventually(WAIT, "A002 served", || async {
        let e = env.desk_events(&a2.id);
        (e.len() >= 3).then_some(e)
    })
    .await;
    assert_eq!(
        a2_events.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![Kind::Called, Kind::Started, Kind::Served]
    );
    let abandoned: Vec<v1::InteractionAbandoned> = env
        .published()
        .iter()
        .filter_map(|e| centralino_bus::EnvelopeExt::decode::<v1::InteractionAbandoned>(e).ok())
        .collect();
    assert_eq!(abandoned.len(), 1);
    assert_eq!(
        (
            abandoned[0].interaction_id.as_str(),
            abandoned[0].reason.as_str()
        ),
        (a1.id.as_str(), "no-show")
    );
    drop((anna, bruno, carla));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_called_customer_who_never_comes_is_a_no_show_and_an_agent_without_a_counter_is_skipped()
{
    let env = Env::start(chrono::Utc::now().timestamp_millis()).await;
    routing(&env).await;
    let a1 = env.take("h24", "A").await;
    // Bruno calls B001 to counter 2 ten desk-seconds before A001 is called:
    // its no-show, due first, shows when the desk checked the clock.
    let b1 = env.take("h24", "B").await;
    env.open_counter("bruno", "h24", "2").await;
    let (mut bruno, offered) = available(&env, "bruno").await;
    assert_eq!(offered, b1.id);
    call(&env, &mut bruno, &b1.id, "2").await;
    env.now.fetch_add(10_000, Ordering::SeqCst);
    // Dario has no counter: routing's assignment comes back and Dario is set
    // not ready, the ticket keeps waiting.
    let (mut dario, offered) = available(&env, "dario").await;
    assert_eq!(offered, a1.id);
    dario
        .send(Action::Accept(v1::OfferAnswer {
            interaction_id: a1.id.clone(),
        }))
        .await;
    dario
        .wait_for(WAIT, |u| match u {
            Update::Status(s) if s.status == "not-ready" => Some(s.reason.clone()),
            _ => None,
        })
        .await
        .map(|reason| assert_eq!(reason, "no-counter"))
        .expect("dario is set not ready");
    assert_eq!(env.ticket(&a1.id).await.state, "waiting");
    // Anna at counter 1 calls it; nobody comes within two minutes.
    env.open_counter("anna", "h24", "1").await;
    let (mut anna, offered) = available(&env, "anna").await;
    assert_eq!(offered, a1.id);
    call(&env, &mut anna, &a1.id, "1").await;
    // (The desk clock runs on from what the test sets.)
    env.now.fetch_add(110_000, Ordering::SeqCst);
    // Sentinel: B001, called 120 s ago, is a no-show, so the desk has checked
    // its called tickets at a time when A001 had waited only 110 s (reads go
    // through the same actor, after the whole check).
    eventually(WAIT, "B001 a no-show after two minutes", || async {
        (env.ticket(&b1.id).await.state == "no-show").then_some(())
    })
    .await;
    assert_eq!(env.ticket(&a1.id).await.state, "called", "not yet");
    env.now.fetch_add(10_000, Ordering::SeqCst);
    eventually(WAIT, "a no-show after two minutes", || async {
        (env.ticket(&a1.id).await.state == "no-show").then_some(())
    })
    .await;
    anna.wait_for(WAIT, |u| {
        matches!(u, Update::CustomerLeft(c) if c.interaction_id == a1.id).then_some(())
    })
    .await
    .expect("routing tells anna");
    // Starting it now is refused with the reason.
    let err = counter_call(&env, "anna", &a1.id, Op::Start)
        .await
        .expect_err("a no-show cannot start");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("no-show"), "{}", err.message());
    let err = counter_call(&env, "anna", &a1.id, Op::NoShow)
        .await
        .expect_err("already a no-show");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    drop((anna, bruno, dario));
    env.stop().await;
}

/// The board page in headless Chromium (`tests/node/board.js`).
struct BoardWatcher {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl BoardWatcher {
    /// Opens the page and waits until it is live.
    async fn open(env: &Env, site: &str, ticket: &str, counter: &str) -> Self {
        use tokio::io::AsyncBufReadExt as _;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
        assert!(
            root.join("node_modules/playwright-core").exists(),
            "playwright-core is missing: (cd tests/node && npm ci) (`.ci/run` does this)"
        );
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&chromium).exists(),
            "Chromium is missing: apt-get install -y chromium (`.ci/run` does this), or set CHROMIUM"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(root.join("board.js"))
            .arg(format!("http://{}/sites/{site}/board", env.http))
            .arg(ticket)
            .arg(counter)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (Node.js is on the machine)");
        let stdout = child.stdout.take().expect("stdout");
        let mut me = Self {
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
        };
        let first = me.line(Duration::from_secs(60)).await;
        assert_eq!(first, "READY", "the board page went live");
        me
    }

    async fn line(&mut self, limit: Duration) -> String {
        match tokio::time::timeout(limit, self.lines.next_line()).await {
            Ok(Ok(Some(l))) => l,
            other => panic!("the board watcher said nothing ({other:?}); its reason is above"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_page_in_a_browser_shows_a_call_within_a_second() {
    let env = Env::start(chrono::Utc::now().timestamp_millis()).await;
    routing(&env).await;
    let a1 = env.take("h24", "A").await;
    env.open_counter("anna", "h24", "2").await;
    let (mut anna, offered) = available(&env, "anna").await;
    assert_eq!(offered, a1.id);
    let mut page = BoardWatcher::open(&env, "h24", "A001", "2").await;
    // The call: Anna accepts, routing assigns, the desk calls the ticket and
    // the page gets the board over server-sent events.
    let called = std::time::Instant::now();
    anna.send(Action::Accept(v1::OfferAnswer {
        interaction_id: a1.id.clone(),
    }))
    .await;
    let seen = page.line(Duration::from_secs(15)).await;
    let took = called.elapsed();
    println!("board: A001 at counter 2 shown {took:?} after the call ({seen})");
    assert!(seen.starts_with("SEEN "), "{seen}");
    assert!(seen.ends_with(" A001"), "the newest call is on top: {seen}");
    assert!(
        took < Duration::from_secs(1),
        "on the board within 1 s of the call, took {took:?}"
    );
    let status = page.child.wait().await.expect("watcher exits");
    assert!(status.success());
    drop(anna);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ticket_is_printed_and_the_customer_texted_once_when_next() {
    use tokio::io::AsyncReadExt as _;
    let env = Env::start(chrono::Utc::now().timestamp_millis()).await;
    routing(&env).await;
    let r = env
        .post(
            "/api/sites/h24/tickets",
            serde_json::json!({ "service": "A", "phone": "+39 347 000 1111" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let ticket: centralino_desk::TicketView = r.json().await.expect("ticket");
    // The printer gets the ticket.
    let (mut conn, _) = tokio::time::timeout(WAIT, env.printer.accept())
        .await
        .expect("the printer is called")
        .expect("accept");
    let mut paper = Vec::new();
    tokio::time::timeout(WAIT, conn.read_to_end(&mut paper))
        .await
        .expect("the ticket arrives")
        .expect("read");
    assert!(paper.starts_with(b"\x1b@"), "ESC @ first");
    assert!(paper.ends_with(b"\x1dV\x00"), "cut last");
    assert!(String::from_utf8_lossy(&paper).contains("A001"));
    // Nobody serves payments yet: routing puts it first in line, and the
    // customer is texted (once, though positions keep coming every second).
    let texts = || {
        env.published()
            .iter()
            .filter_map(|e| centralino_bus::EnvelopeExt::decode::<v1::SendMessage>(e).ok())
            .collect::<Vec<_>>()
    };
    let first = eventually(WAIT, "the turn notice", || async {
        texts().into_iter().next()
    })
    .await;
    assert_eq!(first.recipient, "+393470001111");
    assert_eq!(first.purpose, "transactional");
    assert_eq!(first.body, "Ticket A001 at h24: 1 in line");
    assert!(first.interaction_id.is_empty(), "not an SMS conversation");
    // Routing's places for A001 at the head of the line, seen after its text.
    let places_after_text = || {
        let seen = env.published();
        let text = seen
            .iter()
            .position(|e| e.decode::<v1::SendMessage>().is_ok())?;
        Some(
            seen[text..]
                .iter()
                .filter_map(|e| e.decode::<v1::RoutingEvent>().ok())
                .filter(|p| p.interaction_id == ticket.id && p.position == 1)
                .count(),
        )
    };
    eventually(WAIT, "two more places after the text", || async {
        (places_after_text()? >= 2).then_some(())
    })
    .await;
    // Sentinel: a second customer, first in another line, is texted on a
    // routing event published after those places; the desk handles routing's
    // events in order and relays its texts in order, so a second text to the
    // first customer would have come before this one.
    let r = env
        .post(
            "/api/sites/h24/tickets",
            serde_json::json!({ "service": "C", "phone": "+39 347 000 2222" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    eventually(WAIT, "the second customer's turn notice", || async {
        texts().into_iter().find(|t| t.recipient == "+393470002222")
    })
    .await;
    let to_first = texts()
        .iter()
        .filter(|t| t.recipient == "+393470001111")
        .count();
    assert_eq!(to_first, 1, "texted once");
    assert_eq!(env.ticket(&ticket.id).await.position, 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loses_no_call_counter_or_number() {
    let mut env = Env::start(chrono::Utc::now().timestamp_millis()).await;
    routing(&env).await;
    let a1 = env.take("h24", "A").await;
    env.open_counter("anna", "h24", "1").await;
    let (mut anna, offered) = available(&env, "anna").await;
    assert_eq!(offered, a1.id);
    call(&env, &mut anna, &a1.id, "1").await;
    drop(anna);
    // kill -9 of the router and the desk, then a new start on the same
    // database and broker.
    env.crash();
    env.launch().await;
    // The board is rebuilt from the database; the counter is still Anna's.
    let shown = board(&env, "h24").await;
    assert_eq!(
        shown
            .called
            .first()
            .map(|c| (c.ticket.as_str(), c.counter.as_str())),
        Some(("A001", "1"))
    );
    let t = counter_call(&env, "anna", &a1.id, Op::Recall)
        .await
        .expect("anna recalls after the restart");
    assert_eq!((t.state.as_str(), t.recalls), ("called", 1));
    assert_eq!(env.take("h24", "A").await.label, "A002");
    env.stop().await;
}
