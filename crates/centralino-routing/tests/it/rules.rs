//! One scenario per routing rule.

use centralino_routing::{
    AgentConfig, AgentStatus, Channel, ChannelMap, EngineError, EngineSettings, Enqueue, Event,
    InteractionId, MISSED_OFFERS, Presence, QueueConfig, RequeueReason, RevokeReason,
    SkillRequirement, Step, StepAction, Strategy,
};

use crate::harness::{H, T0};

fn queue(name: &str, channels: &[Channel], skills: &[(&str, u8)]) -> QueueConfig {
    let mut q = QueueConfig::new(name, channels);
    q.skills = skills
        .iter()
        .map(|(s, l)| SkillRequirement::new(*s, *l))
        .collect();
    q
}

fn agent(name: &str, skills: &[(&str, u8)]) -> AgentConfig {
    let mut a = AgentConfig::new(name);
    for (s, l) in skills {
        a = a.skill(*s, *l);
    }
    a
}

#[test]
fn skills_and_levels_decide_who_is_offered() {
    let mut h = H::new();
    h.queue(queue(
        "billing",
        &[Channel::Voice],
        &[("billing", 3), ("italian", 1)],
    ));
    h.agent(agent("junior", &[("billing", 2), ("italian", 5)]));
    h.agent(agent("english", &[("billing", 5)]));
    let id = h.enqueue("billing", Channel::Voice);
    assert_eq!(
        h.state(id),
        Some("waiting"),
        "nobody has both skills at level"
    );
    h.agent(agent("senior", &[("billing", 4), ("italian", 2)]));
    assert_eq!(h.offered_to(id).as_deref(), Some("senior"));
}

#[test]
fn a_relax_step_widens_the_pool_after_the_wait() {
    let mut h = H::new();
    let mut q = queue("billing", &[Channel::Voice], &[("billing", 4)]);
    q.steps = vec![Step {
        after_ms: 30_000,
        action: StepAction::Relax(vec![SkillRequirement::new("billing", 2)]),
    }];
    h.queue(q);
    h.agent(agent("junior", &[("billing", 2)]));
    let id = h.enqueue("billing", Channel::Voice);
    h.advance(29_999);
    assert_eq!(h.state(id), Some("waiting"));
    h.advance(1);
    assert!(
        h.log
            .iter()
            .any(|e| matches!(e, Event::Relaxed { level: 1, .. }))
    );
    assert_eq!(h.offered_to(id).as_deref(), Some("junior"));
}

#[test]
fn overflow_moves_to_another_queue_keeping_arrival_and_close_ends_the_wait() {
    let mut h = H::new();
    let mut q = queue("support", &[Channel::Voice], &[("support", 1)]);
    q.steps = vec![Step {
        after_ms: 10_000,
        action: StepAction::Overflow("overflow".into()),
    }];
    h.queue(q);
    let mut o = queue("overflow", &[Channel::Voice], &[("overflow", 1)]);
    o.steps = vec![Step {
        after_ms: 60_000,
        action: StepAction::Close("voicemail".into()),
    }];
    h.queue(o);
    let first = h.enqueue("support", Channel::Voice);
    h.advance(10_000);
    assert!(h.log.iter().any(|e| matches!(e, Event::Overflowed { interaction, to, .. } if *interaction == first && &**to == "overflow")));
    // An interaction that arrived directly in the overflow queue later is behind
    // the overflowed one: its arrival time was kept.
    let later = h.enqueue("overflow", Channel::Voice);
    let pos = h.e.positions("overflow").expect("positions");
    assert_eq!(pos[0].interaction, first);
    assert_eq!(pos[1].interaction, later);
    // 60 s after entering the overflow queue: closed with the configured outcome.
    h.advance(59_999);
    assert_eq!(h.state(first), Some("waiting"));
    h.advance(1);
    assert!(h.log.iter().any(|e| matches!(e, Event::Closed { interaction, outcome, .. } if *interaction == first && &**outcome == "voicemail")));
    assert_eq!(h.state(first), None);
    // `later` entered 10 s after the start too, so it closes at the same time.
    let stats = h.e.queue_stats("overflow", h.now).expect("stats");
    assert_eq!(stats.closed, 2);
}

#[test]
fn capacity_per_channel_is_never_exceeded_and_a_call_is_exclusive() {
    let mut h = H::new();
    h.queue(queue("mixed", &[Channel::Voice, Channel::Email], &[]));
    let mut a = agent("anna", &[]);
    a.capacity = ChannelMap([1, 2, 0, 0, 0, 0]);
    h.agent(a);
    let e1 = h.enqueue("mixed", Channel::Email);
    let e2 = h.enqueue("mixed", Channel::Email);
    let e3 = h.enqueue("mixed", Channel::Email);
    assert_eq!(h.offered_to(e1).as_deref(), Some("anna"));
    assert_eq!(h.offered_to(e2).as_deref(), Some("anna"));
    assert_eq!(h.state(e3), Some("waiting"), "email capacity is 2");
    // Holding emails does not block a call…
    h.accept("anna", e1);
    h.accept("anna", e2);
    let call = h.enqueue("mixed", Channel::Voice);
    assert_eq!(h.offered_to(call).as_deref(), Some("anna"));
    h.accept("anna", call);
    // …but while on the call nothing else is offered, even with email room.
    h.complete("anna", e1, Some(0));
    assert_eq!(h.state(e3), Some("waiting"), "on a call: nothing else");
    h.complete("anna", call, Some(0));
    assert_eq!(h.offered_to(e3).as_deref(), Some("anna"));
    let view = h.e.agent("anna").expect("agent");
    assert_eq!(view.load, [0, 2, 0, 0, 0, 0]);
}

#[test]
fn not_ready_and_offline_agents_get_nothing_and_open_offers_return() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Sms], &[]));
    h.agent(agent("a", &[]));
    h.presence("a", Presence::NotReady("lunch".into()));
    let id = h.enqueue("q", Channel::Sms);
    assert_eq!(h.state(id), Some("waiting"));
    h.presence("a", Presence::Available);
    assert_eq!(h.offered_to(id).as_deref(), Some("a"));
    h.clear();
    h.presence("a", Presence::Offline);
    assert_eq!(h.state(id), Some("waiting"));
    assert!(h.log.iter().any(|e| matches!(
        e,
        Event::OfferRevoked {
            reason: RevokeReason::AgentUnavailable,
            ..
        }
    )));
    assert!(h.log.iter().any(|e| matches!(
        e,
        Event::AgentChanged {
            status: AgentStatus::Offline,
            ..
        }
    )));
    assert!(matches!(
        h.e.set_presence("a", Presence::NotReady("bad reason!".into()), h.now),
        Err(EngineError::Invalid(_))
    ));
}

#[test]
fn wrap_up_holds_the_slot_until_its_timer_or_the_agent_ends_it() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[]));
    h.agent(agent("a", &[]));
    let c1 = h.enqueue("q", Channel::Voice);
    h.accept("a", c1);
    let c2 = h.enqueue("q", Channel::Voice);
    h.complete("a", c1, None); // voice default wrap-up 10 s
    assert_eq!(h.e.agent("a").expect("a").status, AgentStatus::WrapUp);
    assert_eq!(h.state(c2), Some("waiting"));
    h.advance(10_000);
    assert_eq!(h.offered_to(c2).as_deref(), Some("a"));
    h.accept("a", c2);
    let c3 = h.enqueue("q", Channel::Voice);
    h.complete("a", c2, Some(60_000));
    h.e.end_wrap_up("a", h.now).expect("end wrap");
    h.e.tick(h.now);
    assert_eq!(h.offered_to(c3).as_deref(), Some("a"));
}

fn pool(h: &mut H, names: &[&str]) {
    for (n, name) in names.iter().enumerate() {
        h.agent(agent(name, &[("s", (n % 5 + 1) as u8)]));
        h.advance(1_000);
    }
}

#[test]
fn longest_idle_picks_the_agent_idle_longest() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[("s", 1)]));
    pool(&mut h, &["a", "b", "c"]);
    let x = h.enqueue("q", Channel::Voice);
    assert_eq!(h.offered_to(x).as_deref(), Some("a"));
    h.accept("a", x);
    h.complete("a", x, Some(0));
    let y = h.enqueue("q", Channel::Voice);
    assert_eq!(h.offered_to(y).as_deref(), Some("b"), "a just finished");
}

#[test]
fn least_occupied_spreads_multi_capacity_work() {
    let mut h = H::new();
    let mut q = queue("q", &[Channel::Email], &[("s", 1)]);
    q.strategy = Strategy::LeastOccupied;
    h.queue(q);
    pool(&mut h, &["a", "b"]);
    let mut by_agent = std::collections::HashMap::<String, u32>::new();
    for _ in 0..6 {
        let id = h.enqueue("q", Channel::Email);
        *by_agent
            .entry(h.offered_to(id).expect("offered"))
            .or_default() += 1;
        h.advance(10);
    }
    assert_eq!(by_agent.get("a"), Some(&3));
    assert_eq!(by_agent.get("b"), Some(&3));
}

#[test]
fn round_robin_cycles_through_agents() {
    let mut h = H::new();
    let mut q = queue("q", &[Channel::Voice], &[("s", 1)]);
    q.strategy = Strategy::RoundRobin;
    h.queue(q);
    pool(&mut h, &["a", "b", "c"]);
    let mut got = vec![];
    for _ in 0..6 {
        let id = h.enqueue("q", Channel::Voice);
        let who = h.offered_to(id).expect("offered");
        h.accept(&who, id);
        h.complete(&who, id, Some(0));
        got.push(who);
    }
    assert_eq!(got, ["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn best_proficiency_picks_the_most_skilled_ready_agent() {
    let mut h = H::new();
    let mut q = queue("q", &[Channel::Voice], &[("s", 1)]);
    q.strategy = Strategy::BestProficiency;
    h.queue(q);
    pool(&mut h, &["l1", "l2", "l3"]); // levels 1, 2, 3
    let x = h.enqueue("q", Channel::Voice);
    assert_eq!(h.offered_to(x).as_deref(), Some("l3"));
    let y = h.enqueue("q", Channel::Voice);
    assert_eq!(h.offered_to(y).as_deref(), Some("l2"));
}

#[test]
fn preferred_agent_is_waited_for_then_anyone_may_take_it() {
    let mut h = H::new();
    let mut q = queue("q", &[Channel::Voice], &[]);
    q.preferred_agent_ms = 30_000;
    h.queue(q);
    h.agent(agent("last", &[]));
    h.agent(agent("other", &[]));
    let busy = h.enqueue("q", Channel::Voice);
    let holder = h.offered_to(busy).expect("offered");
    assert_eq!(holder, "last", "longest idle");
    h.accept("last", busy);
    let id = InteractionId::new();
    h.e.enqueue(
        Enqueue {
            id,
            queue: "q".into(),
            channel: Channel::Voice,
            priority: 0,
            arrived_at: h.now,
            preferred_agent: Some("last".into()),
        },
        h.now,
    )
    .expect("enqueue");
    h.e.tick(h.now);
    assert_eq!(
        h.state(id),
        Some("waiting"),
        "waits for its agent although 'other' is idle"
    );
    // The preferred agent frees up within the window: it gets it.
    h.advance(5_000);
    h.complete("last", busy, Some(0));
    assert_eq!(h.offered_to(id).as_deref(), Some("last"));

    // Again, but the preferred agent stays busy: after the window anyone may take it.
    h.accept("last", id);
    let id2 = InteractionId::new();
    h.e.enqueue(
        Enqueue {
            id: id2,
            queue: "q".into(),
            channel: Channel::Voice,
            priority: 0,
            arrived_at: h.now,
            preferred_agent: Some("last".into()),
        },
        h.now,
    )
    .expect("enqueue");
    h.advance(29_999);
    assert_eq!(h.state(id2), Some("waiting"));
    h.advance(1);
    assert_eq!(h.offered_to(id2).as_deref(), Some("other"));
}

#[test]
fn an_agent_serving_two_queues_gets_the_highest_effective_priority() {
    let settings = EngineSettings {
        aging_per_s: 1.0,
        ..EngineSettings::default()
    };
    let mut h = H::with(settings);
    let mut vip = queue("vip", &[Channel::Voice], &[]);
    vip.base_priority = 30;
    h.queue(vip);
    h.queue(queue("std", &[Channel::Voice], &[]));
    let old_std = h.enqueue("std", Channel::Voice); // effective 0 + age
    h.advance(20_000);
    let vip1 = h.enqueue("vip", Channel::Voice); // 30 vs std 20: vip first
    h.agent(agent("a", &[]));
    assert_eq!(h.offered_to(vip1).as_deref(), Some("a"));
    h.accept("a", vip1);
    h.advance(20_000); // std now 40 + ; a new vip is 30
    let vip2 = h.enqueue("vip", Channel::Voice);
    h.complete("a", vip1, Some(0));
    assert_eq!(
        h.offered_to(old_std).as_deref(),
        Some("a"),
        "aging beat the base priority"
    );
    assert_eq!(h.state(vip2), Some("waiting"));
    // Interaction priority counts too: ties broken by arrival.
    h.accept("a", old_std);
    let p_low = h.enqueue_p("vip", Channel::Voice, 0);
    let p_high = h.enqueue_p("vip", Channel::Voice, 50);
    let order: Vec<_> =
        h.e.positions("vip")
            .expect("p")
            .iter()
            .map(|p| p.interaction)
            .collect();
    assert_eq!(order, [p_high, vip2, p_low]);
}

#[test]
fn a_rejected_offer_keeps_its_place_and_the_agent_is_excluded_for_a_while() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[]));
    h.agent(agent("a", &[]));
    let first = h.enqueue("q", Channel::Voice);
    h.presence("a", Presence::NotReady("break".into()));
    let second = h.enqueue("q", Channel::Voice);
    h.presence("a", Presence::Available);
    assert_eq!(h.offered_to(first).as_deref(), Some("a"));
    h.clear();
    h.reject("a", first);
    assert!(h.log.iter().any(|e| matches!(
        e,
        Event::Requeued {
            reason: RequeueReason::Rejected,
            ..
        }
    )));
    // 'a' is excluded from `first`, so it gets `second`; `first` is still first in line.
    assert_eq!(h.offered_to(second).as_deref(), Some("a"));
    h.agent(agent("b", &[]));
    assert_eq!(
        h.offered_to(first).as_deref(),
        Some("b"),
        "first kept its place"
    );
    // After the exclusion ends, 'a' may be offered it again.
    h.reject("b", first);
    h.reject("a", second);
    h.clear();
    h.advance(60_000);
    assert!(h.offered_to(first).is_some());
}

#[test]
fn a_removed_agents_exclusions_do_not_pass_to_the_next_agent_in_its_slot() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[]));
    h.agent(agent("a", &[]));
    let call = h.enqueue("q", Channel::Voice);
    assert_eq!(h.offered_to(call).as_deref(), Some("a"));
    h.reject("a", call);
    // 'a' is kept away from the call for a minute, and leaves.
    h.e.remove_agent("a", h.now).expect("removed");
    h.e.check_invariants().expect("invariants");
    // 'b' takes the slot 'a' left; 'b' never refused the call.
    h.agent(agent("b", &[]));
    assert_eq!(h.offered_to(call).as_deref(), Some("b"));
    h.e.check_invariants().expect("invariants");
}

#[test]
fn an_agent_whose_phone_does_not_answer_is_paused_and_the_call_keeps_its_place() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[]));
    h.agent(agent("a", &[]));
    let first = h.enqueue("q", Channel::Voice);
    h.accept("a", first);
    let second = h.enqueue("q", Channel::Voice);
    assert_eq!(h.state(first), Some("assigned"));
    h.clear();
    h.e.not_reached("a", first, "no-answer", h.now)
        .expect("not reached");
    h.e.check_invariants().expect("invariants");
    let events: Vec<Event> = h.e.drain_events().collect();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Requeued {
            reason: RequeueReason::NotReached,
            interaction,
            ..
        } if *interaction == first
    )));
    assert_eq!(h.state(first), Some("waiting"));
    assert_eq!(h.offered_to(second), None, "the paused agent gets nothing");
    let order: Vec<_> =
        h.e.positions("q")
            .expect("positions")
            .iter()
            .map(|p| p.interaction)
            .collect();
    assert_eq!(order, [first, second], "the call kept its place");
    // Another agent gets it; the first is kept away from it even once back.
    h.agent(agent("b", &[]));
    assert_eq!(h.offered_to(first).as_deref(), Some("b"));
    h.presence("a", Presence::Available);
    assert_eq!(h.offered_to(second).as_deref(), Some("a"));
    // Only the holder can say so, with a valid reason.
    assert!(h.e.not_reached("b", second, "no-answer", h.now).is_err());
    assert!(h.e.not_reached("a", first, "no answer!", h.now).is_err());
}

#[test]
fn expired_offers_requeue_and_consecutive_misses_make_the_agent_not_ready() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[]));
    h.agent(agent("sleepy", &[]));
    let mut ids = vec![];
    for _ in 0..3 {
        ids.push(h.enqueue("q", Channel::Voice));
    }
    for (n, &id) in ids.iter().enumerate() {
        assert_eq!(h.offered_to(id).as_deref(), Some("sleepy"), "offer {n}");
        h.advance(20_000); // voice offer timeout
        assert!(h.log.iter().any(|e| matches!(e, Event::OfferRevoked { interaction, reason: RevokeReason::TimedOut, .. } if *interaction == id)));
    }
    let view = h.e.agent("sleepy").expect("agent");
    assert_eq!(view.presence, Presence::NotReady(MISSED_OFFERS.into()));
    assert!(ids.iter().all(|&id| h.state(id) == Some("waiting")));
    // An agent that answers resets the count.
    h.agent(agent("awake", &[]));
    let got = h.offered_to(ids[0]).expect("offered");
    h.accept(&got, ids[0]);
    assert_eq!(h.e.agent("awake").expect("a").missed_offers, 0);
}

#[test]
fn cancel_abandons_waiting_or_offered_and_notifies_the_holder_otherwise() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[]));
    h.agent(agent("a", &[]));
    let offered = h.enqueue("q", Channel::Voice);
    let waiting = h.enqueue("q", Channel::Voice);
    h.advance(5_000);
    assert!(h.cancel(waiting));
    assert!(h.cancel(offered));
    assert!(h.log.iter().any(|e| matches!(
        e,
        Event::OfferRevoked {
            reason: RevokeReason::Abandoned,
            ..
        }
    )));
    assert!(h.log.iter().any(|e| matches!(e, Event::Abandoned { interaction, waited_ms: 5_000, .. } if *interaction == waiting)));
    let held = h.enqueue("q", Channel::Voice);
    h.accept("a", held);
    h.clear();
    assert!(!h.cancel(held));
    assert!(matches!(h.log[..], [Event::CustomerLeft { .. }]));
    let stats = h.e.queue_stats("q", h.now).expect("stats");
    assert_eq!(stats.abandoned, 2);
    assert_eq!(stats.answered, 1);
    assert_eq!(stats.abandon_rate_pct.map(f64::round), Some(67.0));
}

#[test]
fn withdrawn_work_counts_as_closed_not_abandoned() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Task], &[]));
    h.agent(agent("a", &[]));
    let offered = h.enqueue("q", Channel::Task);
    let waiting = h.enqueue("q", Channel::Task);
    h.advance(2_000);
    assert!(h.e.withdraw(waiting, "done", h.now).expect("withdraw"));
    assert!(h.e.withdraw(offered, "duplicate", h.now).expect("withdraw"));
    h.collect();
    assert!(h.log.iter().any(|e| matches!(
        e,
        Event::Closed { interaction, outcome, waited_ms: 2_000, .. }
            if *interaction == waiting && &**outcome == "done"
    )));
    assert!(
        !h.log.iter().any(|e| matches!(e, Event::Abandoned { .. })),
        "{:?}",
        h.log
    );
    let stats = h.e.queue_stats("q", h.now).expect("stats");
    assert_eq!(stats.abandoned, 0);
    assert_eq!(stats.closed, 2);
}

#[test]
fn positions_and_estimated_waits_follow_handle_times_and_staffing() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[]));
    h.agent(agent("a", &[]));
    h.agent(agent("b", &[]));
    // Teach the queue a 60 s handle time.
    for _ in 0..2 {
        let id = h.enqueue("q", Channel::Voice);
        let who = h.offered_to(id).expect("offered");
        h.accept(&who, id);
        h.advance(60_000);
        h.complete(&who, id, Some(0));
    }
    let c1 = h.enqueue("q", Channel::Voice);
    let c2 = h.enqueue("q", Channel::Voice);
    let w: Vec<_> = (0..3).map(|_| h.enqueue("q", Channel::Voice)).collect();
    let _ = (c1, c2);
    let pos = h.e.positions("q").expect("positions");
    assert_eq!(pos.len(), 3);
    assert_eq!(pos.iter().map(|p| p.interaction).collect::<Vec<_>>(), w);
    // 2 agents, 60 s each: number n waits n × 30 s.
    assert_eq!(pos[0].position, 1);
    assert_eq!(pos[0].estimated_wait_ms, Some(30_000));
    assert_eq!(pos[2].estimated_wait_ms, Some(90_000));
    assert_eq!(h.e.position(w[1]).map(|p| p.position), Some(2));
    // Nobody available: no estimate rather than a made-up one.
    h.presence("a", Presence::NotReady("break".into()));
    h.presence("b", Presence::Offline);
    assert!(
        h.e.positions("q")
            .expect("p")
            .iter()
            .all(|p| p.estimated_wait_ms.is_none())
    );
}

#[test]
fn queue_stats_report_service_level_and_agents_by_state() {
    let mut h = H::new();
    let mut q = queue("q", &[Channel::Voice], &[]);
    q.service_level.threshold_ms = 20_000;
    h.queue(q);
    h.agent(agent("a", &[]));
    h.agent(agent("b", &[]));
    h.presence("b", Presence::NotReady("meeting".into()));
    let fast = h.enqueue("q", Channel::Voice);
    h.accept("a", fast);
    let slow = h.enqueue("q", Channel::Voice);
    h.advance(30_000);
    h.complete("a", fast, Some(0));
    h.accept("a", slow);
    let s = h.e.queue_stats("q", h.now).expect("stats");
    assert_eq!(s.answered, 2);
    assert_eq!(s.service_level_pct, Some(50.0));
    assert_eq!(s.agents.busy, 1);
    assert_eq!(s.agents.not_ready, 1);
    assert_eq!(s.waiting, 0);
    assert_eq!(s.average_answer_ms, Some(15_000.0));
}

#[test]
fn transfer_moves_an_interaction_keeping_its_arrival() {
    let mut h = H::new();
    h.queue(queue("a", &[Channel::Desk], &[("a", 1)]));
    h.queue(queue("b", &[Channel::Desk], &[("b", 1)]));
    h.agent(agent("counter1", &[("a", 1)]));
    let t1 = h.enqueue("a", Channel::Desk);
    h.accept("counter1", t1);
    h.advance(1_000);
    let t2 = h.enqueue("b", Channel::Desk);
    h.e.transfer(t1, "b", h.now).expect("transfer");
    h.e.check_invariants().expect("invariants");
    let order: Vec<_> =
        h.e.positions("b")
            .expect("p")
            .iter()
            .map(|p| p.interaction)
            .collect();
    assert_eq!(order, [t1, t2], "the transferred ticket keeps its place");
    assert!(matches!(
        h.e.transfer(t1, "a", h.now).map_err(|_| ()),
        Ok(())
    ));
    assert!(matches!(
        h.e.transfer(t1, "nope", h.now),
        Err(EngineError::UnknownQueue(_))
    ));
}

#[test]
fn bad_input_is_refused_without_changing_anything() {
    let mut h = H::new();
    h.queue(queue("voice", &[Channel::Voice], &[]));
    h.agent(agent("a", &[]));
    let req = |queue: &str, channel, priority| Enqueue {
        id: InteractionId::new(),
        queue: queue.into(),
        channel,
        priority,
        arrived_at: T0,
        preferred_agent: None,
    };
    assert!(matches!(
        h.e.enqueue(req("nope", Channel::Voice, 0), h.now),
        Err(EngineError::UnknownQueue(_))
    ));
    assert!(matches!(
        h.e.enqueue(req("voice", Channel::Email, 0), h.now),
        Err(EngineError::ChannelNotServed { .. })
    ));
    assert!(
        matches!(h.e.enqueue(req("voice", Channel::Voice, 101), h.now), Err(EngineError::Invalid(e)) if e.field() == "priority")
    );
    let id = h.enqueue("voice", Channel::Voice);
    let dup = Enqueue {
        id,
        ..req("voice", Channel::Voice, 0)
    };
    assert!(matches!(
        h.e.enqueue(dup, h.now),
        Err(EngineError::DuplicateInteraction(_))
    ));
    assert!(matches!(
        h.e.accept("ghost", id, h.now),
        Err(EngineError::UnknownAgent(_))
    ));
    assert!(matches!(
        h.e.complete("a", id, None, h.now),
        Err(EngineError::NotYours { .. })
    ));
    assert!(matches!(
        h.e.accept("a", InteractionId::new(), h.now),
        Err(EngineError::UnknownInteraction(_))
    ));
    assert!(matches!(
        h.e.remove_queue("voice"),
        Err(EngineError::QueueBusy { .. })
    ));
    h.accept("a", id);
    assert!(matches!(
        h.e.remove_agent("a", h.now),
        Err(EngineError::AgentBusy { .. })
    ));
    assert_eq!(h.e.len(), 1);
    h.e.check_invariants().expect("invariants");
}

#[test]
fn offers_and_assignments_are_restored_after_a_restart() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Email], &[]));
    h.e.upsert_agent(agent("a", &[]), h.now).expect("agent");
    h.e.set_presence("a", Presence::Available, h.now)
        .expect("presence");
    let held = InteractionId::new();
    let offered = InteractionId::new();
    let mk = |id| Enqueue {
        id,
        queue: "q".into(),
        channel: Channel::Email,
        priority: 0,
        arrived_at: T0,
        preferred_agent: None,
    };
    h.e.restore_assigned(mk(held), "a", T0, h.now)
        .expect("held");
    h.e.restore_offer(mk(offered), "a", h.now + 5_000, h.now)
        .expect("offer");
    h.e.check_invariants().expect("invariants");
    assert_eq!(h.state(held), Some("assigned"));
    assert_eq!(h.offered_to(offered).as_deref(), Some("a"));
    // The restored offer still expires on time, and nobody is offered it twice.
    h.advance(5_000);
    assert!(
        h.log.iter().any(
            |e| matches!(e, Event::OfferRevoked { interaction, .. } if *interaction == offered)
        )
    );
    assert_eq!(h.e.agent("a").expect("a").load[1], 1);
    h.complete("a", held, Some(0));
}

#[test]
fn reconfiguring_a_queue_refiles_its_waiting_work() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[("x", 3)]));
    h.agent(agent("a", &[("x", 1)]));
    let id = h.enqueue("q", Channel::Voice);
    assert_eq!(h.state(id), Some("waiting"));
    h.queue(queue("q", &[Channel::Voice], &[("x", 1)]));
    assert_eq!(h.offered_to(id).as_deref(), Some("a"));
    assert!(matches!(
        h.e.upsert_queue(queue("q", &[Channel::Email], &[]), h.now),
        Err(EngineError::QueueBusy { .. })
    ));
}

#[test]
fn removing_an_offline_agent_with_a_restored_offer_requeues_it() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Email], &[]));
    h.e.upsert_agent(agent("gone", &[]), h.now).expect("agent");
    let id = InteractionId::new();
    let req = Enqueue {
        id,
        queue: "q".into(),
        channel: Channel::Email,
        priority: 0,
        arrived_at: T0,
        preferred_agent: None,
    };
    // Restored after a crash while the agent is offline (its desktop has not come back).
    h.e.restore_offer(req, "gone", h.now + 10_000, h.now)
        .expect("restore");
    h.e.remove_agent("gone", h.now).expect("removed");
    h.e.check_invariants().expect("invariants");
    assert_eq!(h.state(id), Some("waiting"));
    // The old offer timer fires harmlessly.
    h.advance(10_000);
    h.agent(agent("new", &[]));
    assert_eq!(h.offered_to(id).as_deref(), Some("new"));
}

#[test]
fn editing_a_queue_leaves_offered_and_held_work_with_its_agent() {
    let mut h = H::new();
    h.queue(queue("q", &[Channel::Voice], &[]));
    h.agent(agent("a", &[]));
    h.agent(agent("b", &[]));
    let held = h.enqueue("q", Channel::Voice);
    let holder = h.offered_to(held).expect("offered");
    h.accept(&holder, held);
    let offered = h.enqueue("q", Channel::Voice);
    let offeree = h.offered_to(offered).expect("offered");
    let mut edited = queue("q", &[Channel::Voice], &[]);
    edited.base_priority = 5;
    h.queue(edited);
    assert_eq!(h.state(held), Some("assigned"));
    assert_eq!(h.offered_to(offered), Some(offeree.clone()));
    h.accept(&offeree, offered);
    h.complete(&holder, held, Some(0));
    h.complete(&offeree, offered, Some(0));
}
