//! Calls that reach an agent: baresip as the agent's phone (auto-answer or
//! not answering), sipp as the caller, routing's decisions published by the
//! test.

use std::time::Duration;

use centralino_proto::v1;
use centralino_proto::v1::routing_event::Kind;
use centralino_test_support::eventually;
use centralino_test_support::voice::{
    Baresip, CallerScript, Ending, Sipp, SippUas, Step, run_sipp, sipp_caller_scenario,
};

use crate::support::{Env, NUMBER, WAIT, config};

const CALLER: &str = "+393471234567";

/// The adapter, with `agent`'s phone at `uri`.
async fn with_agent(agent: &str, uri: String) -> Env {
    let mut cfg = config();
    cfg.agents.insert(agent.into(), uri);
    Env::start(cfg).await
}

/// A caller who picks sales (key 1, SIP INFO), then goes on with `steps`
/// and `ending`; returns once the call is queued, with its interaction.
async fn queued_caller(
    env: &Env,
    steps: impl IntoIterator<Item = Step>,
    ending: Ending,
) -> (Sipp, String) {
    let script = CallerScript::new(NUMBER, CALLER)
        .steps([Step::Pause(500), Step::Info('1')])
        .steps(steps)
        .ending(ending);
    let caller = Sipp::spawn(
        &sipp_caller_scenario(&script),
        env.sip,
        &[],
        Duration::from_secs(60),
    );
    let created = env.wait_created(1).await;
    assert_eq!(created[0].queue_hint, "sales");
    (caller, created[0].id.clone())
}

/// Polls the phone's own RTP counters (received, sent) until `enough`
/// says so; the counters then.
async fn phone_rtp(
    phone: &mut Baresip,
    what: &str,
    enough: impl Fn(u64, u64) -> bool,
) -> (u64, u64) {
    let phone = tokio::sync::Mutex::new(phone);
    eventually(WAIT, what, || async {
        phone
            .lock()
            .await
            .rtp_stats()
            .await
            .filter(|&(rx, tx)| enough(rx, tx))
    })
    .await
}

fn count(ended: &v1::InteractionEnded, key: &str) -> u64 {
    ended
        .attributes
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {:?}", ended.attributes))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_phone_rings_audio_flows_both_ways_and_bye_ends_both_legs() {
    let mut phone = Baresip::start("alice").await;
    let env = with_agent("alice", phone.uri()).await;
    let (caller, id) = queued_caller(&env, [Step::Audio, Step::Pause(8_000)], Ending::Bye).await;
    env.routing(Kind::Assigned, &id, "alice").await;
    phone
        .wait_event("CALL_ESTABLISHED", WAIT)
        .await
        .expect("the agent's phone answered");
    // Talk for a while: the phone's own counters show it hears the caller
    // and speaks (more than 50 packets each way, about a second).
    phone_rtp(
        &mut phone,
        "the phone hearing and speaking over 50 packets",
        |rx, tx| rx > 50 && tx > 50,
    )
    .await;
    caller.finish().await.assert_success();
    phone
        .wait_event("CALL_CLOSED", WAIT)
        .await
        .expect("the caller's BYE ended the agent's leg too");
    let ended = env.wait_ended(&id).await;
    assert_eq!(ended.outcome, "answered");
    assert_eq!(
        ended.attributes.get("agent").map(String::as_str),
        Some("alice")
    );
    // Both directions, at both ends of the bridge.
    let caller_in = count(&ended, "rtp.caller.received");
    let agent_out = count(&ended, "rtp.agent.sent");
    let agent_in = count(&ended, "rtp.agent.received");
    let caller_out = count(&ended, "rtp.caller.sent");
    assert!(caller_in > 150, "caller → adapter: {caller_in}");
    assert!(agent_out > 100, "adapter → agent: {agent_out}");
    assert!(agent_in > 100, "agent → adapter: {agent_in}");
    assert!(
        caller_out > agent_in,
        "adapter → caller (prompts, hold, then the agent): {caller_out}"
    );
    assert!(
        env.events::<v1::InteractionAbandoned>("interaction.voice.abandoned")
            .is_empty(),
        "an answered call is not abandoned"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_hanging_up_ends_the_callers_leg() {
    let mut phone = Baresip::start("bob").await;
    let env = with_agent("bob", phone.uri()).await;
    let (caller, id) =
        queued_caller(&env, [Step::Audio], Ending::WaitBye { timeout_ms: 30_000 }).await;
    env.routing(Kind::Assigned, &id, "bob").await;
    phone
        .wait_event("CALL_ESTABLISHED", WAIT)
        .await
        .expect("the agent's phone answered");
    // Sentinel: the adapter recorded the answer, so the legs are bridged
    // when the agent hangs up.
    env.wait_answered(&id).await;
    phone.hangup().await;
    caller.finish().await.assert_success();
    let ended = env.wait_ended(&id).await;
    assert_eq!(ended.outcome, "answered");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_who_does_not_answer_gives_the_call_back_to_routing() {
    let mut phone = Baresip::start_without_answer("carol").await;
    let env = with_agent("carol", phone.uri()).await;
    let (caller, id) = queued_caller(&env, [Step::Pause(7_000)], Ending::Bye).await;
    env.routing(Kind::Assigned, &id, "carol").await;
    phone
        .wait_event("CALL_INCOMING", WAIT)
        .await
        .expect("the agent's phone rang");
    // ring_timeout is 3 s: then CANCEL and the call goes back to routing.
    let back = centralino_test_support::eventually(WAIT, "agent_not_reached", || async {
        env.events::<v1::AgentNotReached>("routing.agent_not_reached")
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(back.interaction_id, id);
    assert_eq!(back.agent, "carol");
    assert_eq!(back.reason, "no-answer");
    phone
        .wait_event("CALL_CLOSED", WAIT)
        .await
        .expect("the ringing stopped (CANCEL)");
    // The caller is still waiting (not hung up on), then leaves.
    caller.finish().await.assert_success();
    let ended = env.wait_ended(&id).await;
    assert_eq!(ended.outcome, "abandoned");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_closing_the_wait_says_so_and_hangs_up() {
    let env = Env::start(config()).await;
    let (caller, id) = queued_caller(&env, [], Ending::WaitBye { timeout_ms: 30_000 }).await;
    // Announcements use routing's figures; then a routing step closes the wait.
    env.routing(Kind::Queued, &id, "").await;
    env.routing(Kind::Position, &id, "").await;
    env.routing(Kind::Closed, &id, "").await;
    caller.finish().await.assert_success();
    let ended = env.wait_ended(&id).await;
    assert_eq!(ended.outcome, "closed");
    assert!(
        env.events::<v1::InteractionAbandoned>("interaction.voice.abandoned")
            .is_empty(),
        "routing closed it: nothing to abandon"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_lost_in_a_crash_are_closed_when_the_adapter_starts_again() {
    let mut env = Env::start(config()).await;
    let (caller, id) = queued_caller(&env, [Step::Pause(20_000)], Ending::Bye).await;
    env.crash();
    drop(caller); // the caller's phone gives up too
    env.restart().await;
    let ended = env.wait_ended(&id).await;
    assert_eq!(ended.outcome, "failed");
    let abandoned = env.events::<v1::InteractionAbandoned>("interaction.voice.abandoned");
    assert_eq!(abandoned.len(), 1, "routing is told to forget the call");
    assert_eq!(abandoned[0].reason, "adapter-restart");
    env.stop().await;
}

/// A caller queues, then asks to be called back (virtual hold) instead of
/// waiting: the callback's interaction id.
async fn caller_asks_for_a_callback(env: &Env) -> String {
    let script = CallerScript::new(NUMBER, CALLER)
        .steps([
            Step::Pause(500),
            Step::Info('1'),
            Step::Pause(1000),
            Step::Info('1'),
        ])
        .ending(Ending::WaitBye { timeout_ms: 20_000 });
    run_sipp(
        &sipp_caller_scenario(&script),
        env.sip,
        &[],
        Duration::from_secs(60),
    )
    .await
    .assert_success();
    env.wait_created(2).await[1].id.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_rings_the_agent_then_calls_the_customer_back() {
    let mut phone = Baresip::start("dave").await;
    let customer = SippUas::start();
    let mut cfg = config();
    cfg.agents.insert("dave".into(), phone.uri());
    cfg.trunk = Some(format!("sip:{{number}}@{}", customer.addr()));
    let env = Env::start(cfg).await;
    // The caller asks for a callback instead of waiting.
    let callback = caller_asks_for_a_callback(&env).await;
    // Routing gives the callback to dave: his phone rings first, then the customer's.
    env.routing(Kind::Assigned, &callback, "dave").await;
    phone
        .wait_event("CALL_ESTABLISHED", WAIT)
        .await
        .expect("the agent answered the callback");
    // Sentinel: the customer answered (recorded right before the bridge),
    // then the phone sent 40 more packets, which the bridge relays to the
    // customer.
    env.wait_answered(&callback).await;
    let (_, sent) = phone_rtp(&mut phone, "the phone's RTP counters", |_, _| true).await;
    phone_rtp(&mut phone, "40 packets into the bridge", |_, tx| {
        tx > sent + 40
    })
    .await;
    phone.hangup().await;
    let ended = env.wait_ended(&callback).await;
    assert_eq!(ended.outcome, "answered", "{:?}", ended.attributes);
    assert_eq!(
        ended.attributes.get("agent").map(String::as_str),
        Some("dave")
    );
    assert!(
        count(&ended, "rtp.agent.received") > 20,
        "{:?}",
        ended.attributes
    );
    assert!(
        count(&ended, "rtp.customer.sent") > 20,
        "{:?}",
        ended.attributes
    );
    env.stop().await;
}

/// Routing assigns a callback while the database fails the adapter's
/// lookup of it (here the lookup waits on a table lock and its connection is
/// then cut, as a database blip would): the event is held and looked up
/// again, not acked and forgotten, and once the database answers the
/// callback is dialled.
#[tokio::test(flavor = "multi_thread")]
async fn a_callback_assigned_during_a_database_blip_is_dialled_once_it_answers() {
    use centralino_store::sea_orm::{ConnectionTrait as _, Statement};
    let mut phone = Baresip::start("erin").await;
    let customer = SippUas::start();
    let mut cfg = config();
    cfg.agents.insert("erin".into(), phone.uri());
    cfg.trunk = Some(format!("sip:{{number}}@{}", customer.addr()));
    let env = Env::start(cfg).await;
    let callback = caller_asks_for_a_callback(&env).await;
    // The database stops answering the adapter's reads of its calls.
    let other = centralino_store::connect(&env.db.url, 2)
        .await
        .expect("a second connection");
    let lock = centralino_store::begin(&other).await.expect("begin");
    lock.execute_unprepared("LOCK TABLE voice_calls IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    env.routing(Kind::Assigned, &callback, "erin").await;
    // The backends whose lookup waits on the lock.
    let waiting_lookups = || async {
        let rows = other
            .query_all_raw(Statement::from_string(
                other.get_database_backend(),
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND datname = current_database() AND query LIKE '%voice_calls%'",
            ))
            .await
            .ok()?;
        rows.iter()
            .map(|r| r.try_get::<i32>("", "pid").ok())
            .collect::<Option<Vec<i32>>>()
    };
    let first =
        centralino_test_support::eventually(WAIT, "the lookup waiting on the lock", || async {
            waiting_lookups().await.filter(|p| !p.is_empty())
        })
        .await;
    // The blip: the connection of the waiting lookup is cut.
    for pid in &first {
        other
            .execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
            .await
            .expect("cut");
    }
    // The event was held: the lookup comes again, on another connection
    // (on the old code it was acked and never looked up again).
    centralino_test_support::eventually(WAIT, "the lookup tried again", || async {
        waiting_lookups()
            .await
            .filter(|p| p.iter().any(|pid| !first.contains(pid)))
    })
    .await;
    lock.rollback().await.expect("the database answers again");
    phone
        .wait_event("CALL_ESTABLISHED", WAIT)
        .await
        .expect("the agent's phone rang for the callback");
    // Sentinel: the customer answered, so the callback is answered when the
    // agent hangs up.
    env.wait_answered(&callback).await;
    phone.hangup().await;
    let ended = env.wait_ended(&callback).await;
    assert_eq!(ended.outcome, "answered", "{:?}", ended.attributes);
    let _ = other.close().await;
    env.stop().await;
}

/// A routing event that does not decode is dead-lettered where an operator
/// sees it (it used to be acked and dropped with a log line).
#[tokio::test(flavor = "multi_thread")]
async fn an_undecodable_routing_event_is_dead_lettered() {
    use centralino_bus::TypedPayload as _;
    let env = Env::start(config()).await;
    let mut garbage = centralino_bus::new_envelope("routing", &v1::RoutingEvent::default());
    garbage.event_type = v1::RoutingEvent::TYPE_NAME.into();
    garbage.payload = vec![0xff, 0xff, 0xff, 0x07];
    env.bus
        .publish(
            centralino_bus::Exchange::Events,
            "routing.voice.assigned",
            &garbage,
        )
        .await
        .expect("publish");
    let dead = centralino_test_support::eventually(WAIT, "the event dead-lettered", || async {
        let dead = env.bus.dead_letters("voice", 10).await.ok()?;
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead[0].envelope.message_id, garbage.message_id);
    env.stop().await;
}

/// The caller's side of a transfer: takes the REFER, reports that the agent
/// answered (NOTIFY with a 200 sipfrag), then waits for our BYE.
const TAKES_REFER: &str = r#"  <recv request="REFER" timeout="20000"/>
  <send>
    <![CDATA[
      SIP/2.0 202 Accepted
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:+393471234567@[local_ip]:[local_port]>
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      NOTIFY [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:+393471234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:100@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 10 NOTIFY
      Contact: <sip:+393471234567@[local_ip]:[local_port]>
      Max-Forwards: 70
      Event: refer
      Subscription-State: terminated;reason=noresource
      Content-Type: message/sipfrag
      Content-Length: [len]

      SIP/2.0 200 OK
    ]]>
  </send>
  <recv response="200"/>
"#;

#[tokio::test(flavor = "multi_thread")]
async fn with_refer_configured_the_caller_is_transferred_to_the_agent() {
    let mut cfg = config();
    cfg.agents
        .insert("erin".into(), "sip:erin@127.0.0.1:5999".into());
    cfg.transfer = centralino_voice::Transfer::Refer;
    let env = Env::start(cfg).await;
    let script = CallerScript::new(NUMBER, CALLER)
        .steps([Step::Pause(500), Step::Info('1')])
        .ending(Ending::WaitBye { timeout_ms: 30_000 });
    let xml = sipp_caller_scenario(&script);
    let at = xml
        .find("  <recv request=\"BYE\"")
        .expect("the ending waits for BYE");
    let xml = format!("{}{TAKES_REFER}{}", &xml[..at], &xml[at..]);
    let caller = Sipp::spawn(&xml, env.sip, &[], Duration::from_secs(60));
    let created = env.wait_created(1).await;
    let id = created[0].id.clone();
    env.routing(Kind::Assigned, &id, "erin").await;
    let outcome = caller.finish().await;
    outcome.assert_success();
    assert!(
        outcome
            .messages_log
            .contains("Refer-To: <sip:erin@127.0.0.1:5999>"),
        "REFER names the agent's phone:\n{}",
        outcome.messages_log
    );
    let ended = env.wait_ended(&id).await;
    assert_eq!(ended.outcome, "answered");
    assert_eq!(
        ended.attributes.get("transfer").map(String::as_str),
        Some("refer")
    );
    assert_eq!(
        ended.attributes.get("agent").map(String::as_str),
        Some("erin")
    );
    env.stop().await;
}

/// The caller puts us on hold with a re-INVITE (`a=sendonly`) and expects
/// 200 with our answer.
const HOLD_REINVITE: &str = r#"  <send retrans="500">
    <![CDATA[
      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:+393471234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:100@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 3 INVITE
      Contact: <sip:+393471234567@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687638 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 96
      a=rtpmap:0 PCMU/8000
      a=rtpmap:96 telephone-event/8000
      a=fmtp:96 0-16
      a=sendonly
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:+393471234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:100@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 3 ACK
      Contact: <sip:+393471234567@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_reinvite_mid_call_is_answered_and_the_call_goes_on() {
    let env = Env::start(config()).await;
    let script = CallerScript::new(NUMBER, CALLER)
        .steps([Step::Pause(500), Step::Info('1'), Step::Pause(300)])
        .ending(Ending::WaitBye { timeout_ms: 30_000 });
    let xml = sipp_caller_scenario(&script);
    let at = xml
        .find("  <recv request=\"BYE\"")
        .expect("the ending waits for BYE");
    // The caller creates this file once it has acknowledged our answer to
    // its hold.
    let held = std::env::temp_dir().join(centralino_test_support::unique("centralino-held-"));
    let xml = format!(
        "{}{HOLD_REINVITE}  <nop><action><exec command=\"touch {}\"/></action></nop>\n{}",
        &xml[..at],
        held.display(),
        &xml[at..]
    );
    let caller = Sipp::spawn(&xml, env.sip, &[], Duration::from_secs(60));
    let created = env.wait_created(1).await;
    let id = created[0].id.clone();
    // Sentinel: the hold is answered; then routing ends the wait, the call
    // still up.
    eventually(WAIT, "the hold answered and acknowledged", || async {
        held.exists().then_some(())
    })
    .await;
    let _ = std::fs::remove_file(&held);
    env.routing(Kind::Closed, &id, "").await;
    let outcome = caller.finish().await;
    outcome.assert_success();
    // Only our answer to the hold can say recvonly (the first answer is sendrecv).
    assert!(
        outcome.messages_log.contains("a=recvonly"),
        "our answer to a=sendonly is a=recvonly:\n{}",
        outcome.messages_log
    );
    assert_eq!(env.wait_ended(&id).await.outcome, "closed");
    env.stop().await;
}

/// The demo's own SIP phone: as a caller its RFC 4733 key reaches the IVR
/// (1: sales) and it stays on the line; as the agent's phone it answers the
/// assigned call, audio flows both ways, and its hang-up ends the caller's
/// leg too.
#[tokio::test(flavor = "multi_thread")]
async fn the_softphone_calls_through_the_ivr_and_answers_as_the_agents_phone() {
    use centralino_voice::softphone::{CallEnd, Softphone};
    let port = centralino_test_support::mail::free_port();
    let agent_addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let talk: centralino_voice::softphone::TalkTime =
        std::sync::Arc::new(|| Duration::from_secs(3));
    let agent_phone = Softphone::start(agent_addr, Some(talk))
        .await
        .expect("the agent's phone listens");
    let env = with_agent("carla", format!("sip:carla@{agent_addr}")).await;
    let caller = Softphone::start(([127, 0, 0, 1], 0).into(), None)
        .await
        .expect("the caller's phone");
    let active = caller
        .dial(
            &format!("sip:{NUMBER}@{}", env.sip),
            CALLER,
            Duration::from_secs(10),
        )
        .await
        .expect("the IVR answers");
    let stay = tokio::spawn(active.stay("1", Duration::from_millis(800), Duration::from_secs(60)));
    let created = env.wait_created(1).await;
    assert_eq!(
        created[0].queue_hint, "sales",
        "{:?}",
        created[0].attributes
    );
    assert_eq!(
        created[0].attributes.get("ivr.keys").map(String::as_str),
        Some("1"),
        "one key press, counted once"
    );
    let id = created[0].id.clone();
    env.routing(Kind::Assigned, &id, "carla").await;
    let end = tokio::time::timeout(WAIT, stay)
        .await
        .expect("the call ends once the agent's phone hangs up")
        .expect("join");
    assert!(
        matches!(
            end,
            CallEnd::Answered {
                by_far_end: true,
                ..
            }
        ),
        "the far end hung up: {end:?}"
    );
    let ended = env.wait_ended(&id).await;
    assert_eq!(ended.outcome, "answered");
    assert!(
        count(&ended, "rtp.agent.received") > 50,
        "{:?}",
        ended.attributes
    );
    assert!(
        count(&ended, "rtp.agent.sent") > 50,
        "{:?}",
        ended.attributes
    );
    assert!(
        count(&ended, "rtp.caller.received") > 50,
        "{:?}",
        ended.attributes
    );
    // Neither phone keeps the call's dialog once it is over.
    eventually(WAIT, "both phones forgot the call", || async {
        (caller.open_dialogs() == 0 && agent_phone.open_dialogs() == 0).then_some(())
    })
    .await;
    caller.stop().await;
    agent_phone.stop().await;
    env.stop().await;
}
