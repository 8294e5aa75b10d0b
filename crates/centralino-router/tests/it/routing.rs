//! The routing service end to end: a test adapter publishes interactions on
//! real RabbitMQ, the router (PostgreSQL) offers them to agents connected over
//! gRPC.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use centralino_auth::Role;
use centralino_bus::{Exchange, new_envelope};
use centralino_proto::v1;
use centralino_proto::v1::agent_request::Action;
use centralino_proto::v1::agent_update::Update;
use centralino_proto::v1::routing_event::Kind;
use centralino_router::{FileDefinitions, RouterConfig};
use centralino_routing::{ChannelMap, EngineSettings};
use centralino_test_support::eventually;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(15);

fn queue(name: &str, channels: &[v1::Channel], skills: Vec<v1::SkillLevel>) -> v1::QueueDefinition {
    v1::QueueDefinition {
        name: name.into(),
        channels: channels.iter().map(|c| *c as i32).collect(),
        skills,
        ..Default::default()
    }
}

fn agent(
    name: &str,
    skills: Vec<v1::SkillLevel>,
    caps: &[(v1::Channel, u32)],
) -> v1::AgentDefinition {
    v1::AgentDefinition {
        name: name.into(),
        display_name: name.to_uppercase(),
        skills,
        capacity: caps
            .iter()
            .map(|(c, n)| v1::ChannelCapacity {
                channel: *c as i32,
                capacity: *n,
            })
            .collect(),
    }
}

fn config(offer_timeout_ms: u64) -> RouterConfig {
    RouterConfig {
        engine: EngineSettings {
            offer_timeout_ms: ChannelMap::all(offer_timeout_ms),
            wrap_up_ms: ChannelMap::all(0),
            ..EngineSettings::default()
        },
        position_interval_ms: 0,
        ..RouterConfig::default()
    }
}

#[tokio::test]
async fn interactions_on_mixed_channels_are_offered_by_skill_and_capacity() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(30_000)).await;
    let admin_token = env.token("root", Role::Admin);
    configure(
        router.addr,
        &admin_token,
        &["billing", "italian"],
        vec![
            queue(
                "billing",
                &[v1::Channel::Voice],
                vec![skill_level("billing", 3)],
            ),
            queue(
                "support",
                &[v1::Channel::Email, v1::Channel::Sms],
                vec![skill_level("italian", 1)],
            ),
        ],
        vec![
            agent(
                "anna",
                vec![skill_level("billing", 4), skill_level("italian", 2)],
                &[(v1::Channel::Email, 2), (v1::Channel::Sms, 0)],
            ),
            agent(
                "bruno",
                vec![skill_level("billing", 2), skill_level("italian", 5)],
                &[(v1::Channel::Email, 1), (v1::Channel::Sms, 0)],
            ),
        ],
    )
    .await;
    let (mut anna, snap) = Desk::open(router.addr, &env.token("anna", Role::Agent))
        .await
        .expect("anna");
    assert_eq!(snap.status.expect("status").status, "offline");
    let (mut bruno, _) = Desk::open(router.addr, &env.token("bruno", Role::Agent))
        .await
        .expect("bruno");
    anna.available().await;
    bruno.available().await;

    // A call needs billing ≥ 3: only anna qualifies, although bruno is idle longer.
    let call = env.publish("billing", v1::Channel::Voice).await;
    let offered = anna
        .wait_for(WAIT, offer_id)
        .await
        .expect("anna offered the call");
    assert_eq!(offered, call);
    anna.send(Action::Accept(v1::OfferAnswer {
        interaction_id: call.clone(),
    }))
    .await;
    anna.wait_for(WAIT, |u| {
        matches!(u, Update::Assigned(a) if a.interaction_id == call).then_some(())
    })
    .await
    .expect("assigned");

    // While anna is on the call, emails go to bruno (capacity 1), then wait.
    let e1 = env.publish("support", v1::Channel::Email).await;
    let e2 = env.publish("support", v1::Channel::Email).await;
    let got = bruno
        .wait_for(WAIT, offer_id)
        .await
        .expect("bruno offered an email");
    assert_eq!(got, e1, "first come, first offered");
    assert!(
        bruno
            .next(Duration::from_millis(700))
            .await
            .is_none_or(|u| offer_id(&u).is_none()),
        "bruno's email capacity is 1"
    );
    // Anna hangs up: now she may take email (capacity 2).
    anna.send(Action::Complete(v1::CompleteInteraction {
        interaction_id: call.clone(),
        disposition: "solved".into(),
        wrap_up_notes: "refund issued".into(),
        wrap_up_ms: Some(0),
    }))
    .await;
    let got = anna
        .wait_for(WAIT, offer_id)
        .await
        .expect("anna offered the second email");
    assert_eq!(got, e2);

    // An SMS: anna has no SMS capacity, bruno is full → it waits, with a position.
    let sms = env.publish("support", v1::Channel::Sms).await;
    let mut sup = supervisor(router.addr).await;
    let sup_token = env.token("sara", Role::Supervisor);
    let waiting = eventually(WAIT, "the SMS waits in support", || {
        let mut sup = sup.clone();
        let t = sup_token.clone();
        async move {
            let w = sup
                .list_waiting(authed(
                    v1::ListWaitingRequest {
                        queue: "support".into(),
                    },
                    &t,
                ))
                .await
                .ok()?
                .into_inner();
            (!w.waiting.is_empty()).then_some(w)
        }
    })
    .await;
    assert_eq!(waiting.waiting[0].interaction_id, sms);
    assert_eq!(waiting.waiting[0].position, 1);

    // The bus carries the story of the call, completed with its disposition.
    eventually(WAIT, "the call's events on the bus", || async {
        let kinds: Vec<Kind> = env.events_of(&call).into_iter().map(|e| e.0).collect();
        [Kind::Queued, Kind::Offered, Kind::Assigned, Kind::Completed]
            .iter()
            .all(|k| kinds.contains(k))
            .then_some(())
    })
    .await;
    let completed = env
        .events()
        .iter()
        .find(|e| e.interaction_id == call && e.kind() == Kind::Completed)
        .cloned()
        .expect("completed");
    assert_eq!(completed.agent, "anna");
    assert_eq!(completed.disposition, "solved");
    assert_eq!(completed.channel, v1::Channel::Voice as i32);

    // The supervisor board sees it all.
    let board = sup
        .watch_queues(authed(
            v1::WatchQueuesRequest {
                queues: vec![],
                interval_ms: 250,
            },
            &sup_token,
        ))
        .await
        .expect("watch")
        .into_inner()
        .message()
        .await
        .expect("board")
        .expect("a board");
    let billing = board
        .queues
        .iter()
        .find(|q| q.queue == "billing")
        .expect("billing");
    assert_eq!(billing.answered, 1);
    assert_eq!(billing.service_level_pct, Some(100.0));
    let support = board
        .queues
        .iter()
        .find(|q| q.queue == "support")
        .expect("support");
    assert_eq!(support.waiting, 1);
    assert_eq!(board.agents.len(), 2);
    // The customer gives up: the SMS leaves the line, as an abandon.
    env.abandon(&sms, v1::Channel::Sms).await;
    eventually(WAIT, "the SMS abandoned", || async {
        env.events_of(&sms)
            .iter()
            .any(|e| e.0 == Kind::Abandoned)
            .then_some(())
    })
    .await;
    let w = sup
        .list_waiting(authed(
            v1::ListWaitingRequest {
                queue: "support".into(),
            },
            &sup_token,
        ))
        .await
        .expect("waiting")
        .into_inner();
    assert!(w.waiting.is_empty());
    drop(anna);
    drop(bruno);
    router.stop().await;
    env.cleanup().await;
}

/// Sets the agent available and waits for the router's answer (the presence
/// applied).
async fn available_applied(desk: &mut Desk) {
    let id = desk
        .send(Action::SetPresence(v1::SetPresence {
            presence: v1::AgentPresence::Available as i32,
            reason: String::new(),
        }))
        .await;
    let ok = desk
        .wait_for(WAIT, |u| match u {
            Update::Result(r) if r.request_id == id => Some(r.ok),
            _ => None,
        })
        .await;
    assert_eq!(ok, Some(true), "the router applied the presence");
}

#[tokio::test]
async fn an_agent_who_does_not_answer_is_skipped() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(1_500)).await;
    configure(
        router.addr,
        &env.token("root", Role::Admin),
        &[],
        vec![queue("sales", &[v1::Channel::Voice], vec![])],
        vec![agent("sleepy", vec![], &[]), agent("awake", vec![], &[])],
    )
    .await;
    let (mut sleepy, _) = Desk::open(router.addr, &env.token("sleepy", Role::Agent))
        .await
        .expect("sleepy");
    // Sentinel: the router answered sleepy's presence, so sleepy is in the
    // longest-idle order before awake logs in.
    available_applied(&mut sleepy).await;
    let (mut awake, _) = Desk::open(router.addr, &env.token("awake", Role::Agent))
        .await
        .expect("awake");
    // Sentinel: both are available before the call comes.
    available_applied(&mut awake).await;
    let call = env.publish("sales", v1::Channel::Voice).await;
    assert_eq!(
        sleepy.wait_for(WAIT, offer_id).await.as_deref(),
        Some(call.as_str())
    );
    // sleepy does nothing: the offer is taken back and awake gets the call.
    let revoked = sleepy
        .wait_for(WAIT, |u| match u {
            Update::OfferRevoked(r) => Some(r.reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(revoked.as_deref(), Some("timed-out"));
    assert_eq!(
        awake.wait_for(WAIT, offer_id).await.as_deref(),
        Some(call.as_str())
    );
    let id = awake
        .send(Action::Accept(v1::OfferAnswer {
            interaction_id: call.clone(),
        }))
        .await;
    let ok = awake
        .wait_for(WAIT, |u| match u {
            Update::Result(r) if r.request_id == id => Some(r.ok),
            _ => None,
        })
        .await;
    assert_eq!(ok, Some(true));
    // Accepting again is refused, naming why, and changes nothing.
    let again = awake
        .send(Action::Accept(v1::OfferAnswer {
            interaction_id: call.clone(),
        }))
        .await;
    let refused = awake
        .wait_for(WAIT, |u| match u {
            Update::Result(r) if r.request_id == again => Some(r.clone()),
            _ => None,
        })
        .await
        .expect("result");
    assert!(!refused.ok);
    assert_eq!(refused.code, tonic::Code::FailedPrecondition as i32);
    eventually(WAIT, "requeued then assigned on the bus", || async {
        let kinds: Vec<(Kind, String)> = env.events_of(&call);
        (kinds.contains(&(Kind::Requeued, String::new()))
            && kinds.contains(&(Kind::Assigned, "awake".into())))
        .then_some(())
    })
    .await;
    router.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_phone_that_does_not_answer_pauses_its_agent_and_the_call_goes_to_another() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(30_000)).await;
    configure(
        router.addr,
        &env.token("root", Role::Admin),
        &[],
        vec![queue("sales", &[v1::Channel::Voice], vec![])],
        vec![agent("away", vec![], &[]), agent("here", vec![], &[])],
    )
    .await;
    let (mut away, _) = Desk::open(router.addr, &env.token("away", Role::Agent))
        .await
        .expect("away");
    away.available().await;
    let call = env.publish("sales", v1::Channel::Voice).await;
    assert_eq!(
        away.wait_for(WAIT, offer_id).await.as_deref(),
        Some(call.as_str())
    );
    away.send(Action::Accept(v1::OfferAnswer {
        interaction_id: call.clone(),
    }))
    .await;
    eventually(WAIT, "assigned to away", || async {
        env.events_of(&call)
            .contains(&(Kind::Assigned, "away".into()))
            .then_some(())
    })
    .await;
    let (mut here, _) = Desk::open(router.addr, &env.token("here", Role::Agent))
        .await
        .expect("here");
    here.available().await;
    // The voice adapter rang away's phone in vain.
    env.not_reached(&call, "away", "no-answer").await;
    let status = away
        .wait_for(WAIT, |u| match u {
            Update::Status(s) if s.status == "not-ready" => Some(s.reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(status.as_deref(), Some("no-answer"), "away is paused");
    assert_eq!(
        here.wait_for(WAIT, offer_id).await.as_deref(),
        Some(call.as_str()),
        "the call went to the agent who is there"
    );
    eventually(WAIT, "requeued on the bus", || async {
        env.events_of(&call)
            .contains(&(Kind::Requeued, String::new()))
            .then_some(())
    })
    .await;
    // A repeated or stale command changes nothing (here holds only an offer).
    env.not_reached(&call, "away", "no-answer").await;
    here.send(Action::Accept(v1::OfferAnswer {
        interaction_id: call.clone(),
    }))
    .await;
    eventually(WAIT, "assigned to here", || async {
        env.events_of(&call)
            .contains(&(Kind::Assigned, "here".into()))
            .then_some(())
    })
    .await;
    router.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_creation_delivered_after_its_abandon_is_not_routed() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(20_000)).await;
    configure(
        router.addr,
        &env.token("root", Role::Admin),
        &[],
        vec![queue("sales", &[v1::Channel::Voice], vec![])],
        vec![agent("ada", vec![], &[])],
    )
    .await;
    // The adapter's abandon overtook its creation (a redelivery after a nack).
    let gone = uuid::Uuid::now_v7().to_string();
    env.abandon(&gone, v1::Channel::Voice).await;
    env.publish_as(&gone, "sales", v1::Channel::Voice).await;
    let waiting = env.publish("sales", v1::Channel::Voice).await;
    let (mut ada, _) = Desk::open(router.addr, &env.token("ada", Role::Agent))
        .await
        .expect("ada");
    ada.available().await;
    // The older interaction would come first if it had been routed.
    assert_eq!(
        ada.wait_for(WAIT, offer_id).await.as_deref(),
        Some(waiting.as_str())
    );
    assert!(
        env.events_of(&gone).is_empty(),
        "{:?}",
        env.events_of(&gone)
    );
    router.stop().await;
    env.cleanup().await;
}

/// Any publisher writes the envelope's `occurred_at`: one that overflows, is
/// negative, from 1970 or from the future neither stops the router nor puts
/// its interaction ahead of one that really waited longer; nor does a
/// `preferred_agent` no agent could have.
#[tokio::test]
async fn an_absurd_occurred_at_neither_panics_nor_jumps_the_queue() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(20_000)).await;
    configure(
        router.addr,
        &env.token("root", Role::Admin),
        &[],
        vec![queue("sales", &[v1::Channel::Voice], vec![])],
        vec![agent("ada", vec![], &[])],
    )
    .await;
    let first = env.publish("sales", v1::Channel::Voice).await;
    let mut absurd = Vec::new();
    for (seconds, nanos) in [
        (i64::MAX, 0),
        (-5, 0),
        (0, 0),
        (1, -1),
        (i64::MAX / 1000, 999_999_999),
    ] {
        let id = uuid::Uuid::now_v7().to_string();
        let mut e = new_envelope(
            "test-adapter",
            &v1::InteractionCreated {
                interaction: Some(v1::Interaction {
                    id: id.clone(),
                    channel: v1::Channel::Voice as i32,
                    direction: v1::Direction::Inbound as i32,
                    queue_hint: "sales".into(),
                    // Nobody's name (too long for the column, a NUL): ignored,
                    // not a batch the database refuses.
                    attributes: HashMap::from([(
                        "preferred_agent".to_owned(),
                        format!("{}\0", "x".repeat(100)),
                    )]),
                    ..Default::default()
                }),
            },
        );
        e.occurred_at = Some(prost_types::Timestamp { seconds, nanos });
        env.bus
            .publish(Exchange::Events, "interaction.voice.created", &e)
            .await
            .expect("publish");
        absurd.push(id);
    }
    // All of them queued (none dead-lettered, the router still up)...
    eventually(WAIT, "every interaction queued", || async {
        absurd
            .iter()
            .chain([&first])
            .all(|id| env.events_of(id).iter().any(|(k, _)| *k == Kind::Queued))
            .then_some(())
    })
    .await;
    // ...and the one that waited longest is offered first.
    let (mut ada, _) = Desk::open(router.addr, &env.token("ada", Role::Agent))
        .await
        .expect("ada");
    ada.available().await;
    assert_eq!(
        ada.wait_for(WAIT, offer_id).await.as_deref(),
        Some(first.as_str())
    );
    assert!(
        env.bus
            .dead_letters("routing", 10)
            .await
            .expect("dead letters")
            .is_empty()
    );
    router.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_interaction_for_a_missing_queue_is_held_then_routed_once_the_queue_is_defined() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(20_000)).await;
    let admin = env.token("root", Role::Admin);
    configure(
        router.addr,
        &admin,
        &[],
        vec![],
        vec![agent("ada", vec![], &[])],
    )
    .await;
    let early = env.publish("late-queue", v1::Channel::Voice).await;
    eventually(WAIT, "the interaction dead-lettered", || async {
        let dead = env.bus.dead_letters("routing", 10).await.ok()?;
        (dead.len() == 1).then_some(())
    })
    .await;
    // The queue is created: routing replays what it held by itself, and the
    // interaction is routed (its inbox claim was taken back when refused).
    configure(
        router.addr,
        &admin,
        &[],
        vec![queue("late-queue", &[v1::Channel::Voice], vec![])],
        vec![],
    )
    .await;
    let (mut ada, _) = Desk::open(router.addr, &env.token("ada", Role::Agent))
        .await
        .expect("ada");
    ada.available().await;
    assert_eq!(
        ada.wait_for(WAIT, offer_id).await.as_deref(),
        Some(early.as_str())
    );
    assert!(
        env.bus
            .dead_letters("routing", 10)
            .await
            .expect("dead letters")
            .is_empty(),
        "nothing is held any more"
    );
    router.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn admin_and_session_calls_validate_input_and_roles() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(30_000)).await;
    let token = env.token("root", Role::Admin);
    let mut admin = admin(router.addr).await;
    let err = admin
        .upsert_queue(authed(
            queue("bad name", &[v1::Channel::Voice], vec![]),
            &token,
        ))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("queue.name"), "{}", err.message());
    let err = admin
        .upsert_queue(authed(
            queue("q", &[v1::Channel::Voice], vec![skill_level("ghost", 1)]),
            &token,
        ))
        .await
        .expect_err("unknown skill");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("ghost"));
    let err = admin
        .delete_queue(authed(
            v1::DeleteRequest {
                name: "nope".into(),
            },
            &token,
        ))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), tonic::Code::NotFound);
    // Roles: an agent may not administer; a supervisor may read definitions but not change them.
    let err = admin
        .list_queues(authed(v1::ListRequest {}, &env.token("anna", Role::Agent)))
        .await
        .expect_err("agent");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let sup = env.token("sara", Role::Supervisor);
    assert!(
        admin
            .list_queues(authed(v1::ListRequest {}, &sup))
            .await
            .is_ok()
    );
    let err = admin
        .upsert_skill(authed(
            v1::Skill {
                name: "x".into(),
                description: String::new(),
            },
            &sup,
        ))
        .await
        .expect_err("supervisor");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // A session for an agent that was never created is refused.
    let err = Desk::open(router.addr, &env.token("ghost", Role::Agent))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code(), tonic::Code::NotFound);
    // Bad session requests get a result naming the field; the session stays up.
    configure(
        router.addr,
        &token,
        &[],
        vec![queue("q", &[v1::Channel::Voice], vec![])],
        vec![agent("anna", vec![], &[])],
    )
    .await;
    let (mut anna, _) = Desk::open(router.addr, &env.token("anna", Role::Agent))
        .await
        .expect("anna");
    let id = anna
        .send(Action::Accept(v1::OfferAnswer {
            interaction_id: "not-a-uuid".into(),
        }))
        .await;
    let r = anna
        .wait_for(WAIT, |u| match u {
            Update::Result(r) if r.request_id == id => Some(r.clone()),
            _ => None,
        })
        .await
        .expect("result");
    assert_eq!(
        (r.ok, r.code, r.field.as_str()),
        (false, tonic::Code::InvalidArgument as i32, "interaction_id")
    );
    let id = anna
        .send(Action::SetPresence(v1::SetPresence {
            presence: v1::AgentPresence::NotReady as i32,
            reason: String::new(),
        }))
        .await;
    let r = anna
        .wait_for(WAIT, |u| match u {
            Update::Result(r) if r.request_id == id => Some(r.clone()),
            _ => None,
        })
        .await
        .expect("result");
    assert_eq!(r.field, "reason");
    // Definitions survive a restart, field for field.
    let before = admin
        .list_queues(authed(v1::ListRequest {}, &token))
        .await
        .expect("list")
        .into_inner();
    drop(anna);
    router.stop().await;
    let router = RouterProcess::start(&env, config(30_000)).await;
    let mut admin = crate::support::admin(router.addr).await;
    let after = admin
        .list_queues(authed(v1::ListRequest {}, &token))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(before, after);
    router.stop().await;
    env.cleanup().await;
}

/// Three agents taking email work from the router at `addr_tx`'s address
/// (they follow it when it changes), with half of `FLOOR_TOTAL`
/// interactions published and under way: some completed, some held.
struct BusyFloor {
    addr_tx: tokio::sync::watch::Sender<Vec<std::net::SocketAddr>>,
    ledger: Arc<OfferLedger>,
    agents: Vec<tokio::task::JoinHandle<()>>,
    ids: Vec<String>,
}

const FLOOR_TOTAL: usize = 120;

impl BusyFloor {
    async fn start(env: &Env, addr: std::net::SocketAddr) -> Self {
        configure(
            addr,
            &env.token("root", Role::Admin),
            &[],
            vec![queue("mail", &[v1::Channel::Email], vec![])],
            (0..3)
                .map(|n| agent(&format!("a{n}"), vec![], &[(v1::Channel::Email, 3)]))
                .collect(),
        )
        .await;
        let (addr_tx, addr_rx) = tokio::sync::watch::channel(vec![addr]);
        let ledger = Arc::new(OfferLedger::default());
        let agents = (0..3)
            .map(|n| {
                spawn_worker(
                    format!("a{n}"),
                    env.token(&format!("a{n}"), Role::Agent),
                    addr_rx.clone(),
                    Duration::from_millis(150),
                    ledger.clone(),
                )
            })
            .collect();
        let mut floor = Self {
            addr_tx,
            ledger,
            agents,
            ids: Vec::new(),
        };
        for _ in 0..FLOOR_TOTAL / 2 {
            floor
                .ids
                .push(env.publish("mail", v1::Channel::Email).await);
        }
        eventually(WAIT, "some work done, some held", || async {
            let (assigned, completed) = floor.counts(env);
            (completed >= 5 && assigned > completed).then_some(())
        })
        .await;
        floor
    }

    /// (assigned, completed) routing events so far.
    fn counts(&self, env: &Env) -> (usize, usize) {
        let events = env.events();
        let count = |k: Kind| events.iter().filter(|e| e.kind() == k).count();
        (count(Kind::Assigned), count(Kind::Completed))
    }

    /// Publishes the other half (RabbitMQ keeps it whatever the router does).
    async fn publish_rest(&mut self, env: &Env) {
        for _ in self.ids.len()..FLOOR_TOTAL {
            self.ids.push(env.publish("mail", v1::Channel::Email).await);
        }
    }

    /// Waits until every published interaction completed (none lost), then
    /// checks none completed twice and none was offered to two agents, and
    /// prints the three counts after `what`.
    async fn finish(self, env: &Env, what: &str) {
        let ids = &self.ids;
        let done = eventually(
            Duration::from_secs(60),
            "every interaction completed (none lost)",
            || async {
                let events = env.events();
                let mut done: HashMap<String, usize> = HashMap::new();
                for e in events.iter().filter(|e| e.kind() == Kind::Completed) {
                    *done.entry(e.interaction_id.clone()).or_default() += 1;
                }
                ids.iter().all(|i| done.contains_key(i)).then_some(done)
            },
        )
        .await;
        let twice = done.values().filter(|n| **n > 1).count();
        let violations = self.ledger.violations();
        let offered_twice = violations.len();
        println!(
            "{what}: 0 lost, {twice} completed twice, {offered_twice} offered to two agents, of {FLOOR_TOTAL}"
        );
        assert_eq!(
            done.len(),
            FLOOR_TOTAL,
            "exactly the published interactions completed"
        );
        assert_eq!(twice, 0, "completed more than once: {done:?}");
        assert!(violations.is_empty(), "{violations:?}");
        for a in self.agents {
            a.abort();
        }
    }
}

#[tokio::test]
async fn a_crashed_router_restarts_without_losing_or_doubling_anything() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(30_000)).await;
    let mut floor = BusyFloor::start(&env, router.addr).await;
    // Crash mid-stream, with work held by agents and more waiting.
    router.crash();
    let in_flight = floor.counts(&env);
    assert!(
        in_flight.0 > in_flight.1,
        "the crash hit held work: {in_flight:?}"
    );
    // Publishing goes on while the router is down.
    floor.publish_rest(&env).await;
    let router = RouterProcess::start(&env, config(30_000)).await;
    floor
        .addr_tx
        .send(vec![router.addr])
        .expect("agents listen");
    floor.finish(&env, "crash").await;
    router.stop().await;
    env.cleanup().await;
}

/// The split brain a PostgreSQL restart used to cause: the active router's
/// lock goes away at once (here its lock connection is cut, the same for the
/// lock as a restart, while its pool keeps working, the worst case), the
/// standby takes over, and the deposed one, which has not noticed yet, keeps
/// consuming and deciding. Its writes are fenced off, it steps down, and
/// what it held goes to the new leader: nothing lost, nothing completed
/// twice, nothing offered to two agents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_router_loses_and_doubles_nothing_when_its_lock_goes() {
    use centralino_store::sea_orm::ConnectionTrait as _;
    let env = Env::new().await;
    let active = RouterProcess::start(&env, config(30_000)).await;
    let standby = RouterProcess::start_standby(&env, config(30_000));
    let mut floor = BusyFloor::start(&env, active.addr).await;
    // The lock goes; the active router goes on as if nothing happened.
    let db = centralino_store::connect(&env.db.url, 1)
        .await
        .expect("database");
    db.execute_unprepared(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .await
    .expect("cut the lock connection");
    let _ = db.close().await;
    // Publishing goes on through the takeover.
    floor.publish_rest(&env).await;
    let leader = tokio::time::timeout(Duration::from_secs(30), standby)
        .await
        .expect("the standby took over within 30 s")
        .expect("task")
        .expect("serving");
    floor
        .addr_tx
        .send(vec![leader.addr])
        .expect("agents follow the leader");
    floor.finish(&env, "split brain").await;
    leader.stop().await;
    active.stop().await;
    env.cleanup().await;
}

/// The first board a supervisor gets for `queue`.
async fn figures(addr: std::net::SocketAddr, token: &str, queue: &str) -> v1::QueueFigures {
    supervisor(addr)
        .await
        .watch_queues(authed(
            v1::WatchQueuesRequest {
                queues: vec![queue.into()],
                interval_ms: 250,
            },
            token,
        ))
        .await
        .expect("watch")
        .into_inner()
        .message()
        .await
        .expect("board")
        .expect("a board")
        .queues
        .into_iter()
        .find(|q| q.queue == queue)
        .expect("the queue's figures")
}

/// What supervisors read (entered, answered, average answer and handle
/// times) does not start again from zero when another instance takes over.
#[tokio::test]
async fn queue_figures_survive_a_takeover() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(30_000)).await;
    configure(
        router.addr,
        &env.token("root", Role::Admin),
        &[],
        vec![queue("mail", &[v1::Channel::Email], vec![])],
        vec![agent("anna", vec![], &[])],
    )
    .await;
    let sup = env.token("sara", Role::Supervisor);
    let (mut anna, _) = Desk::open(router.addr, &env.token("anna", Role::Agent))
        .await
        .expect("anna");
    anna.available().await;
    for _ in 0..3 {
        env.publish("mail", v1::Channel::Email).await;
    }
    // Anna answers and completes two of them; the third waits.
    for _ in 0..2 {
        let id = anna.wait_for(WAIT, offer_id).await.expect("an offer");
        anna.send(Action::Accept(v1::OfferAnswer {
            interaction_id: id.clone(),
        }))
        .await;
        anna.send(Action::Complete(v1::CompleteInteraction {
            interaction_id: id,
            disposition: "done".into(),
            ..Default::default()
        }))
        .await;
    }
    anna.send(Action::SetPresence(v1::SetPresence {
        presence: v1::AgentPresence::NotReady.into(),
        reason: "break".into(),
    }))
    .await;
    // Both completions committed (their events are published after the
    // commit), so the figures read next include both handle times.
    eventually(WAIT, "two completed", || async {
        let events = env.events();
        (events
            .iter()
            .filter(|e| e.kind() == Kind::Completed)
            .count()
            == 2)
            .then_some(())
    })
    .await;
    let before = figures(router.addr, &sup, "mail").await;
    assert_eq!((before.entered, before.answered), (3, 2));
    drop(anna);
    router.stop().await;
    let router = RouterProcess::start(&env, config(30_000)).await;
    let after = figures(router.addr, &sup, "mail").await;
    assert_eq!(
        (after.entered, after.answered, after.abandoned),
        (before.entered, before.answered, before.abandoned)
    );
    assert_eq!(after.average_answer_ms, before.average_answer_ms);
    assert_eq!(after.service_level_pct, before.service_level_pct);
    let handle = |f: &v1::QueueFigures| f.average_handle_ms.map(|h| h.round());
    assert_eq!(handle(&after), handle(&before));
    assert_eq!(after.waiting, 1, "the third still waits");
    router.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_standby_router_waits_then_takes_over_with_the_state() {
    let env = Env::new().await;
    let active = RouterProcess::start(&env, config(30_000)).await;
    let token = env.token("root", Role::Admin);
    configure(
        active.addr,
        &token,
        &[],
        vec![queue("mail", &[v1::Channel::Email], vec![])],
        vec![agent("anna", vec![], &[])],
    )
    .await;
    let waiting = env.publish("mail", v1::Channel::Email).await;
    eventually(WAIT, "queued by the active router", || async {
        env.events_of(&waiting)
            .iter()
            .any(|e| e.0 == Kind::Queued)
            .then_some(())
    })
    .await;
    let standby = RouterProcess::start_standby(&env, config(30_000));
    // Sentinel: the standby has asked for the lock and been refused.
    env.db.standby_refused(WAIT).await;
    assert!(
        !standby.is_finished(),
        "the standby must not serve while the active router runs"
    );
    // Work published now goes to the active router only.
    let second = env.publish("mail", v1::Channel::Email).await;
    eventually(WAIT, "queued by the active router", || async {
        env.events_of(&second)
            .iter()
            .any(|e| e.0 == Kind::Queued)
            .then_some(())
    })
    .await;
    active.stop().await;
    let took_over = tokio::time::timeout(Duration::from_secs(30), standby)
        .await
        .expect("the standby took over within 30 s")
        .expect("task")
        .expect("serving");
    // It has the state: anna logs in and gets both waiting emails.
    let (mut anna, _) = Desk::open(took_over.addr, &env.token("anna", Role::Agent))
        .await
        .expect("anna");
    anna.available().await;
    let mut offered = vec![
        anna.wait_for(WAIT, offer_id).await.expect("first offer"),
        anna.wait_for(WAIT, offer_id).await.expect("second offer"),
    ];
    offered.sort();
    let mut expected = vec![waiting, second];
    expected.sort();
    assert_eq!(offered, expected);
    drop(anna);
    took_over.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn waiting_customers_get_position_events_with_estimates() {
    let env = Env::new().await;
    let router = RouterProcess::start(
        &env,
        RouterConfig {
            position_interval_ms: 1_000,
            ..config(30_000)
        },
    )
    .await;
    let token = env.token("root", Role::Admin);
    configure(
        router.addr,
        &token,
        &[],
        vec![queue("desk", &[v1::Channel::Desk], vec![])],
        vec![agent("counter", vec![], &[])],
    )
    .await;
    let first = env.publish("desk", v1::Channel::Desk).await;
    let second = env.publish("desk", v1::Channel::Desk).await;
    // Nobody logged in: positions, but no made-up estimate.
    let position = |id: &str| {
        env.events()
            .iter()
            .rev()
            .find(|e| e.interaction_id == id && e.kind() == Kind::Position)
            .cloned()
    };
    eventually(WAIT, "position events for both", || async {
        (position(&first).is_some() && position(&second).is_some()).then_some(())
    })
    .await;
    let (p1, p2) = (
        position(&first).expect("first"),
        position(&second).expect("second"),
    );
    assert_eq!((p1.position, p2.position), (1, 2));
    assert_eq!(p1.estimated_wait_ms, None);
    assert_eq!(p2.queue, "desk");
    // The agent becomes available: the first is offered,
    // the second becomes number 1 with an estimate.
    let (mut counter, _) = Desk::open(router.addr, &env.token("counter", Role::Agent))
        .await
        .expect("counter");
    counter.available().await;
    assert_eq!(
        counter.wait_for(WAIT, offer_id).await.as_deref(),
        Some(first.as_str())
    );
    eventually(WAIT, "the second moves up with an estimate", || async {
        position(&second)
            .filter(|p| p.position == 1 && p.estimated_wait_ms.is_some())
            .map(|_| ())
    })
    .await;
    drop(counter);
    router.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_second_login_ends_the_first_session_and_gets_the_work() {
    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(30_000)).await;
    configure(
        router.addr,
        &env.token("root", Role::Admin),
        &[],
        vec![queue("q", &[v1::Channel::Voice], vec![])],
        vec![agent("anna", vec![], &[])],
    )
    .await;
    let token = env.token("anna", Role::Agent);
    let (mut first, _) = Desk::open(router.addr, &token).await.expect("first");
    first.available().await;
    let call = env.publish("q", v1::Channel::Voice).await;
    assert_eq!(
        first.wait_for(WAIT, offer_id).await.as_deref(),
        Some(call.as_str())
    );
    // Anna's desktop restarts: the new session sees the open offer in its snapshot…
    let (mut second, snapshot) = Desk::open(router.addr, &token).await.expect("second");
    assert_eq!(snapshot.offers.len(), 1);
    assert_eq!(snapshot.offers[0].interaction_id, call);
    // …and the old one ends instead of silently missing what comes next.
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match first.updates.message().await {
                Ok(Some(_)) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the replaced session's stream ended");
    second
        .send(Action::Accept(v1::OfferAnswer {
            interaction_id: call.clone(),
        }))
        .await;
    second
        .wait_for(WAIT, |u| {
            matches!(u, Update::Assigned(a) if a.interaction_id == call).then_some(())
        })
        .await
        .expect("assigned through the new session");
    drop(second);
    router.stop().await;
    env.cleanup().await;
}

async fn listed(
    admin: &mut v1::routing_admin_service_client::RoutingAdminServiceClient<
        tonic::transport::Channel,
    >,
    token: &str,
) -> (Vec<v1::QueueDefinition>, Vec<String>) {
    let queues = admin
        .list_queues(authed(v1::ListRequest {}, token))
        .await
        .expect("queues")
        .into_inner()
        .queues;
    let agents = admin
        .list_agents(authed(v1::ListRequest {}, token))
        .await
        .expect("agents")
        .into_inner()
        .agents
        .into_iter()
        .map(|a| a.name)
        .collect();
    (queues, agents)
}

/// Definitions from the configuration file: applied at start, owned by the
/// file (the API may neither change nor delete them, and says where they
/// are), changed and removed by the next start's file while the API's own
/// stay; a definition the database cannot take fails the start, naming its
/// key, and nothing of that file is applied.
#[tokio::test]
async fn definitions_from_the_file_are_applied_owned_and_follow_the_file() {
    let env = Env::new().await;
    let token = env.token("root", Role::Admin);
    let mut cfg = config(30_000);
    cfg.definitions = FileDefinitions {
        skills: vec![v1::Skill {
            name: "it".into(),
            description: "Italian".into(),
        }],
        queues: vec![
            queue("sales", &[v1::Channel::Voice], vec![skill_level("it", 2)]),
            queue("old", &[v1::Channel::Email], vec![]),
        ],
        agents: vec![agent("anna", vec![skill_level("it", 5)], &[])],
    };
    let router = RouterProcess::start(&env, cfg.clone()).await;
    let mut api = admin(router.addr).await;
    let (queues, agents) = listed(&mut api, &token).await;
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["old", "sales"]);
    assert_eq!(agents, ["anna"]);
    let err = api
        .upsert_queue(authed(
            queue("sales", &[v1::Channel::Email], vec![]),
            &token,
        ))
        .await
        .expect_err("the file owns sales");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("[[routing.queues]]"),
        "{}",
        err.message()
    );
    let err = api
        .delete_agent(authed(
            v1::DeleteRequest {
                name: "anna".into(),
            },
            &token,
        ))
        .await
        .expect_err("the file owns anna");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let err = api
        .delete_skill(authed(v1::DeleteRequest { name: "it".into() }, &token))
        .await
        .expect_err("the file owns it");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    // What the API defines is the API's.
    api.upsert_queue(authed(
        queue("api-queue", &[v1::Channel::Sms], vec![]),
        &token,
    ))
    .await
    .expect("an API queue");
    // A queue another overflows to is not deleted from under it.
    let mut over = queue("api-over", &[v1::Channel::Sms], vec![]);
    over.steps = vec![v1::RoutingStep {
        after_ms: 1_000,
        action: Some(v1::routing_step::Action::OverflowTo("api-queue".into())),
    }];
    api.upsert_queue(authed(over, &token))
        .await
        .expect("an API queue overflowing to api-queue");
    let err = api
        .delete_queue(authed(
            v1::DeleteRequest {
                name: "api-queue".into(),
            },
            &token,
        ))
        .await
        .expect_err("api-over overflows to it");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("api-over"), "{}", err.message());
    api.delete_queue(authed(
        v1::DeleteRequest {
            name: "api-over".into(),
        },
        &token,
    ))
    .await
    .expect("api-over goes");
    router.stop().await;

    // The file is edited: sales changes, old and anna go, marco comes.
    cfg.definitions.queues = vec![queue(
        "sales",
        &[v1::Channel::Email],
        vec![skill_level("it", 2)],
    )];
    cfg.definitions.agents = vec![agent("marco", vec![], &[])];
    let router = RouterProcess::start(&env, cfg.clone()).await;
    let mut api = admin(router.addr).await;
    let (queues, agents) = listed(&mut api, &token).await;
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["api-queue", "sales"], "old went with the file");
    let sales = queues.iter().find(|q| q.name == "sales").expect("sales");
    assert_eq!(sales.channels, [v1::Channel::Email as i32]);
    assert_eq!(agents, ["marco"]);
    // A name the file gave up is free for the API.
    api.upsert_queue(authed(queue("old", &[v1::Channel::Voice], vec![]), &token))
        .await
        .expect("old is the API's now");
    router.stop().await;

    // A queue naming a skill nobody defines: the start fails, naming it.
    // The same file also moves sales back to voice and drops marco.
    let mut bad = cfg.clone();
    bad.definitions.agents = vec![];
    bad.definitions.queues[0].channels = vec![v1::Channel::Voice as i32];
    bad.definitions.queues.push(queue(
        "bad",
        &[v1::Channel::Voice],
        vec![skill_level("nope", 1)],
    ));
    let db = centralino_store::connect(&env.db.url, 2)
        .await
        .expect("database");
    let err = centralino_router::start(bad, db, env.bus.clone(), 4 << 20, std::future::pending())
        .await
        .err()
        .expect("the start is refused");
    assert!(
        err.to_string().contains("routing.queues[bad]"),
        "names the key: {err}"
    );
    // A skill the file stops listing while its queues still ask for it.
    let mut dropped = cfg.clone();
    dropped.definitions.skills.clear();
    let db = centralino_store::connect(&env.db.url, 2)
        .await
        .expect("database");
    let err = centralino_router::start(
        dropped,
        db,
        env.bus.clone(),
        4 << 20,
        std::future::pending(),
    )
    .await
    .err()
    .expect("the start is refused");
    assert!(
        err.to_string()
            .contains("routing.queues[sales]: uses skill it, which the file no longer lists"),
        "names the key: {err}"
    );
    // An overflow to a queue nobody defines is a typo: refused, named.
    let mut typo = cfg.clone();
    typo.definitions.queues[0].steps = vec![v1::RoutingStep {
        after_ms: 60_000,
        action: Some(v1::routing_step::Action::OverflowTo("suport".into())),
    }];
    let db = centralino_store::connect(&env.db.url, 2)
        .await
        .expect("database");
    let err = centralino_router::start(typo, db, env.bus.clone(), 4 << 20, std::future::pending())
        .await
        .err()
        .expect("the start is refused");
    assert!(
        err.to_string()
            .contains("routing.queues[sales].steps[1].overflow_to"),
        "names the key: {err}"
    );
    // Nothing of the refused files was applied: sales is as it was, marco
    // is there (read through a start whose file defines nothing, which
    // changes nothing and gives what the file owned to the API).
    let router = RouterProcess::start(&env, config(30_000)).await;
    let mut api = admin(router.addr).await;
    let (queues, agents) = listed(&mut api, &token).await;
    let sales = queues.iter().find(|q| q.name == "sales").expect("sales");
    assert_eq!(sales.channels, [v1::Channel::Email as i32]);
    assert!(sales.steps.is_empty());
    assert_eq!(agents, ["marco"]);
    api.delete_agent(authed(
        v1::DeleteRequest {
            name: "marco".into(),
        },
        &token,
    ))
    .await
    .expect("marco is the API's now");
    router.stop().await;
    env.cleanup().await;
}

/// The browser desktop's stream: numbered events; a desktop that lost its
/// stream resumes after the last event it applied and gets exactly what it
/// missed (no snapshot, nothing twice); a stale epoch gets a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_desktop_resumes_after_the_last_event_it_applied() {
    use centralino_proto::v1::agent_desk_service_client::AgentDeskServiceClient;
    use centralino_proto::v1::desk_event::Event;

    let env = Env::new().await;
    let router = RouterProcess::start(&env, config(60_000)).await;
    configure(
        router.addr,
        &env.token("root", Role::Admin),
        &[],
        vec![queue("mail", &[v1::Channel::Email], vec![])],
        vec![agent("anna", vec![], &[(v1::Channel::Email, 3)])],
    )
    .await;
    let token = env.token("anna", Role::Agent);
    let mut desk = AgentDeskServiceClient::new(channel(router.addr).await);
    let open = |epoch: &str, after_seq: u64| {
        authed(
            v1::DeskEventsRequest {
                epoch: epoch.into(),
                after_seq,
            },
            &token,
        )
    };
    let mut events = desk.events(open("", 0)).await.expect("events").into_inner();
    let first = events.message().await.expect("read").expect("an event");
    assert!(
        matches!(&first.event, Some(Event::Update(u)) if matches!(u.update, Some(Update::Snapshot(_)))),
        "a first connect starts with a snapshot: {first:?}"
    );
    let epoch = first.epoch.clone();
    assert_eq!(first.seq, 1);

    let available = v1::AgentRequest {
        request_id: "go-1".into(),
        action: Some(Action::SetPresence(v1::SetPresence {
            presence: v1::AgentPresence::Available as i32,
            reason: String::new(),
        })),
    };
    let r = desk
        .act(authed(available.clone(), &token))
        .await
        .expect("act")
        .into_inner();
    assert!(r.ok, "{r:?}");
    let again = desk
        .act(authed(available, &token))
        .await
        .expect("act")
        .into_inner();
    assert_eq!(again, r, "a repeated request id answers the first result");
    let bad = desk
        .act(authed(
            v1::AgentRequest {
                request_id: String::new(),
                action: None,
            },
            &token,
        ))
        .await
        .expect("act")
        .into_inner();
    assert!(!bad.ok && bad.field == "request_id", "{bad:?}");

    // Read until the first email's offer, keeping the last seq applied.
    let a = env.publish("mail", v1::Channel::Email).await;
    let mut last = first.seq;
    loop {
        let e = tokio::time::timeout(WAIT, events.message())
            .await
            .expect("the offer in time")
            .expect("read")
            .expect("an event");
        assert_eq!(e.epoch, epoch);
        assert!(e.seq > last, "seqs only grow: {} after {last}", e.seq);
        last = e.seq;
        if matches!(&e.event, Some(Event::Update(v1::AgentUpdate { update: Some(Update::Offer(o)) })) if o.interaction_id == a)
        {
            break;
        }
    }

    // The stream drops; a second email is offered meanwhile (within the grace).
    drop(events);
    let b = env.publish("mail", v1::Channel::Email).await;
    eventually(WAIT, "the second email offered to anna", || async {
        env.events_of(&b)
            .contains(&(Kind::Offered, "anna".into()))
            .then_some(())
    })
    .await;

    let mut resumed = desk
        .events(open(&epoch, last))
        .await
        .expect("resume")
        .into_inner();
    // Exactly what followed the last applied event (the first offer's status
    // change, then the missed offer), numbered on from it, the first offer
    // not again.
    let mut expect = last + 1;
    loop {
        let e = tokio::time::timeout(WAIT, resumed.message())
            .await
            .expect("in time")
            .expect("read")
            .expect("an event");
        assert_eq!(e.seq, expect, "numbered on from the last applied: {e:?}");
        expect += 1;
        match &e.event {
            Some(Event::Update(v1::AgentUpdate {
                update: Some(Update::Offer(o)),
            })) => {
                assert_eq!(o.interaction_id, b, "the missed offer, not the first again");
                break;
            }
            Some(Event::Update(v1::AgentUpdate {
                update: Some(Update::Status(_)),
            })) => {}
            other => panic!("expected what was missed, got {other:?}"),
        }
    }
    drop(resumed);

    // An epoch this router never issued: a snapshot with both offers.
    let mut fresh = desk
        .events(open("0123456789abcdef", last))
        .await
        .expect("fresh")
        .into_inner();
    let e = fresh.message().await.expect("read").expect("an event");
    match &e.event {
        Some(Event::Update(v1::AgentUpdate {
            update: Some(Update::Snapshot(s)),
        })) => {
            let mut offered: Vec<&str> =
                s.offers.iter().map(|o| o.interaction_id.as_str()).collect();
            offered.sort_unstable();
            let mut want = vec![a.as_str(), b.as_str()];
            want.sort_unstable();
            assert_eq!(offered, want);
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    drop(fresh);
    router.stop().await;
    env.cleanup().await;
}
