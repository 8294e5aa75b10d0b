//! Calls from sipp through the IVR.

use std::time::Duration;

use centralino_proto::v1;
use centralino_test_support::voice::{CallerScript, Ending, Step, run_sipp, sipp_caller_scenario};

use centralino_voice::VoiceConfig;

use crate::support::{Env, NUMBER, WAIT, config};

const CALLER: &str = "+393471234567";

/// The caller of [`sentinel_call`].
const SENTINEL_CALLER: &str = "+393470000001";

/// A caller who queues (key 1) and hangs up, placed after calls that must
/// leave nothing behind: once its interaction is seen, everything the
/// earlier calls could have made is too (the adapter's one outbox is relayed
/// in order). Every interaction created so far.
async fn sentinel_call(env: &Env) -> Vec<v1::Interaction> {
    call(
        env,
        CallerScript::new(NUMBER, SENTINEL_CALLER)
            .steps([Step::Pause(500), Step::Info('1'), Step::Pause(500)])
            .ending(Ending::Bye),
    )
    .await;
    centralino_test_support::eventually(WAIT, "the sentinel call's interaction", || async {
        let c = env.created();
        c.iter()
            .any(|i| i.identifiers.iter().any(|id| id.value == SENTINEL_CALLER))
            .then_some(c)
    })
    .await
}

async fn call(env: &Env, script: CallerScript) {
    run_sipp(
        &sipp_caller_scenario(&script),
        env.sip,
        &[],
        Duration::from_secs(60),
    )
    .await
    .assert_success();
}

/// A scenario of our own (for answers the caller script does not expect).
async fn raw(env: &Env, service: &str, steps: &str) {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"raw\">\n{steps}</scenario>\n"
    );
    run_sipp(&xml, env.sip, &["-s", service], Duration::from_secs(30))
        .await
        .assert_success();
}

/// An INVITE offering `formats` and expecting `answer` (no ACK: the
/// adapter's transaction ends by itself).
fn invite(formats: &str, rtpmap: &str, answer: u16) -> String {
    format!(
        r#"
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:+393471234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {formats}
      {rtpmap}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="{answer}"/>
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_by_sip_info_queues_the_caller_and_hanging_up_abandons() {
    let env = Env::start(config()).await;
    call(
        &env,
        CallerScript::new(NUMBER, CALLER)
            .steps([Step::Pause(800), Step::Info('1'), Step::Pause(1500)])
            .ending(Ending::Bye),
    )
    .await;
    let created = env.wait_created(1).await;
    assert_eq!(created[0].queue_hint, "sales");
    assert_eq!(created[0].channel, v1::Channel::Voice as i32);
    assert_eq!(created[0].identifiers[0].value, CALLER);
    assert_eq!(
        created[0].attributes.get("ivr.keys").map(String::as_str),
        Some("1")
    );
    let ended = env.wait_ended(&created[0].id).await;
    assert_eq!(ended.outcome, "abandoned");
    assert_eq!(ended.ivr_path, vec!["root:1".to_owned()]);
    let abandoned = env.events::<v1::InteractionAbandoned>("interaction.voice.abandoned");
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].reason, "caller-hung-up");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc4733_keys_walk_the_menus_and_a_wrong_key_prompts_again() {
    let env = Env::start(config()).await;
    call(
        &env,
        CallerScript::new(NUMBER, CALLER)
            .steps([
                Step::Pause(800),
                Step::Rfc4733("7".into()),
                Step::Rfc4733("2".into()),
                Step::Rfc4733("1".into()),
                Step::Pause(1000),
            ])
            .ending(Ending::Bye),
    )
    .await;
    let created = env.wait_created(1).await;
    assert_eq!(
        created[0].queue_hint, "billing",
        "{:?}",
        created[0].attributes
    );
    assert_eq!(created[0].priority, 50);
    assert_eq!(
        created[0].attributes.get("ivr.keys").map(String::as_str),
        Some("721"),
        "each key counted once although RFC 4733 repeats its end packets"
    );
    let ended = env.wait_ended(&created[0].id).await;
    assert_eq!(ended.ivr_path, vec!["root:invalid", "root:2", "billing:1"]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn virtual_hold_turns_the_wait_into_a_callback() {
    let env = Env::start(config()).await;
    call(
        &env,
        CallerScript::new(NUMBER, CALLER)
            .steps([
                Step::Pause(500),
                Step::Info('1'),
                Step::Pause(1500),
                Step::Info('1'),
            ])
            .ending(Ending::WaitBye { timeout_ms: 20_000 }),
    )
    .await;
    let created = env.wait_created(2).await;
    let (waiting, callback) = (&created[0], &created[1]);
    assert_eq!(waiting.queue_hint, "sales");
    assert_eq!(callback.queue_hint, "sales");
    assert_eq!(callback.direction, v1::Direction::Outbound as i32);
    assert_eq!(callback.identifiers[0].value, CALLER);
    assert_eq!(
        callback.attributes.get("voice.callback_for"),
        Some(&waiting.id)
    );
    let abandoned = env.events::<v1::InteractionAbandoned>("interaction.voice.abandoned");
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].interaction_id, waiting.id);
    assert_eq!(abandoned[0].reason, "callback-requested");
    let ended = env.wait_ended(&waiting.id).await;
    assert_eq!(ended.outcome, "callback");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rtp_stays_in_its_port_range_and_a_call_finding_none_free_gets_503() {
    // Two even ports, base and base + 2, below the ephemeral range.
    let base = loop {
        let p = 20_000 + (uuid::Uuid::new_v4().as_u128() % 5_000) as u16 * 2;
        if (0..4).all(|i| std::net::UdpSocket::bind(("127.0.0.1", p + i)).is_ok()) {
            break p;
        }
    };
    let busy = std::net::UdpSocket::bind(("127.0.0.1", base + 2)).expect("busy port");
    let env = Env::start(VoiceConfig {
        rtp_ports: Some(base..=base + 3),
        ..config()
    })
    .await;
    // The answer's audio port is the one free port of the range (SIPp fails
    // the call when the answer does not match).
    // A key queues the caller, so the call is an interaction whose end we see.
    let scenario = sipp_caller_scenario(
        &CallerScript::new(NUMBER, CALLER)
            .steps([Step::Pause(800), Step::Info('1'), Step::Pause(500)])
            .ending(Ending::Bye),
    );
    let plain = r#"<recv response="200" rrs="true" timeout="10000"/>"#;
    assert!(scenario.contains(plain), "the caller script's answer step");
    let checked = format!(
        r#"<recv response="200" rrs="true" timeout="10000"><action><ereg regexp="m=audio {base} RTP/AVP" search_in="body" check_it="true" assign_to="m"/></action></recv><Reference variables="m"/>"#
    );
    run_sipp(
        &scenario.replace(plain, &checked),
        env.sip,
        &[],
        Duration::from_secs(60),
    )
    .await
    .assert_success();
    let first = env.wait_created(1).await;
    env.wait_ended(&first[0].id).await;
    // Once that call has let its port go, take it too: the range is full.
    let also_busy = centralino_test_support::eventually(
        Duration::from_secs(10),
        "the ended call's RTP port is free",
        || async { std::net::UdpSocket::bind(("127.0.0.1", base)).ok() },
    )
    .await;
    raw(
        &env,
        NUMBER,
        &invite(
            "0 96",
            "a=rtpmap:0 PCMU/8000\n      a=rtpmap:96 telephone-event/8000",
            503,
        ),
    )
    .await;
    // Sentinel: with its ports free again, a later call gets through; by then
    // anything the refused call made would be seen.
    drop((busy, also_busy));
    let created = sentinel_call(&env).await;
    assert_eq!(
        created.len(),
        2,
        "the refused call made no interaction: {created:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_calls_get_proper_answers_and_leave_nothing_behind() {
    let env = Env::start(config()).await;
    // Only G.729 offered: 488, no call.
    raw(&env, NUMBER, &invite("18", "a=rtpmap:18 G729/8000", 488)).await;
    // A number we do not serve: 404.
    raw(
        &env,
        "999",
        &invite(
            "0 96",
            "a=rtpmap:0 PCMU/8000\n      a=rtpmap:96 telephone-event/8000",
            404,
        ),
    )
    .await;
    // OPTIONS (a keep-alive ping) outside any call: 200.
    let options = r#"
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:monitor@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
"#;
    raw(&env, NUMBER, options).await;
    let created = sentinel_call(&env).await;
    assert_eq!(
        created.len(),
        1,
        "no interaction for refused calls: {created:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_over_tcp_work_the_same() {
    let env = Env::start(config()).await;
    let script = CallerScript::new(NUMBER, CALLER)
        .steps([
            Step::Pause(500),
            Step::Info('2'),
            Step::Info('1'),
            Step::Pause(500),
        ])
        .ending(Ending::Bye);
    run_sipp(
        &sipp_caller_scenario(&script),
        env.sip,
        &["-t", "t1"],
        Duration::from_secs(60),
    )
    .await
    .assert_success();
    let created = env.wait_created(1).await;
    assert_eq!(created[0].queue_hint, "billing");
    let ended = env.wait_ended(&created[0].id).await;
    assert_eq!(ended.outcome, "abandoned");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_whose_phone_goes_silent_is_hung_up() {
    let mut cfg = config();
    cfg.media_timeout = Duration::from_secs(2);
    let env = Env::start(cfg).await;
    // This caller sends no RTP at all (as a phone that lost its network).
    call(
        &env,
        CallerScript::new(NUMBER, CALLER)
            .steps([Step::Pause(300), Step::Info('1')])
            .ending(Ending::WaitBye { timeout_ms: 15_000 }),
    )
    .await;
    let created = env.wait_created(1).await;
    let ended = env.wait_ended(&created[0].id).await;
    assert_eq!(ended.outcome, "abandoned");
    let abandoned = env.events::<v1::InteractionAbandoned>("interaction.voice.abandoned");
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].reason, "media-timeout");
    env.stop().await;
}
