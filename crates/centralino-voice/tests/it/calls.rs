//! Calls from sipp through the IVR.

use std::process::Stdio;
use std::time::Duration;

use centralino_proto::v1;

use crate::support::{Env, NUMBER, config};

const INVITE: &str = r#"
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
      m=audio [auto_media_port] RTP/AVP 0 96
      a=rtpmap:0 PCMU/8000
      a=rtpmap:96 telephone-event/8000
      a=fmtp:96 0-16
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:+393471234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"#;

fn info(cseq: u32, key: char) -> String {
    format!(
        r#"
  <send retrans="500">
    <![CDATA[
      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:+393471234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={key}
      Duration=160
    ]]>
  </send>
  <recv response="200"/>
"#
    )
}

fn bye(cseq: u32) -> String {
    format!(
        r#"
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:+393471234567@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} BYE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
"#
    )
}

fn pause(ms: u64) -> String {
    format!("  <pause milliseconds=\"{ms}\"/>\n")
}

async fn sipp(env: &Env, body: &str) {
    sipp_scenario(env, NUMBER, &format!("{INVITE}{body}")).await;
}

async fn sipp_scenario(env: &Env, service: &str, steps: &str) {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("sipp"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("scenario.xml");
    std::fs::write(
        &file,
        format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"caller\">\n{steps}</scenario>\n"),
    )
    .expect("scenario written");
    let out = tokio::process::Command::new("sipp")
        .current_dir(&dir)
        .args([
            "-sf",
            "scenario.xml",
            "-m",
            "1",
            "-nostdin",
            "-s",
            service,
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-timeout",
            "60s",
            "-timeout_error",
            "-trace_err",
        ])
        .arg(env.sip.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("sipp runs (apt-get install -y sip-tester)");
    let errors = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        out.status.success(),
        "sipp failed ({service}): {}\n{}\n{errors}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_by_sip_info_queues_the_caller_and_hanging_up_abandons() {
    let env = Env::start(config()).await;
    let body = format!("{}{}{}{}", pause(800), info(2, '1'), pause(1500), bye(3));
    sipp(&env, &body).await;
    let created = env.wait_created(1).await;
    assert_eq!(created[0].queue_hint, "sales");
    assert_eq!(created[0].channel, v1::Channel::Voice as i32);
    assert_eq!(created[0].identifiers[0].value, "+393471234567");
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
    tokio::time::sleep(Duration::from_millis(10)).await;
    env.stop().await;
}

fn rfc4733(keys: &str) -> String {
    format!(
        "  <nop><action><exec play_dtmf=\"{keys}\"/></action></nop>\n{}",
        pause(1000 * keys.len() as u64)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn rfc4733_keys_walk_the_menus_and_a_wrong_key_prompts_again() {
    let env = Env::start(config()).await;
    let body = format!(
        "{}{}{}{}{}{}",
        pause(800),
        rfc4733("7"),
        rfc4733("2"),
        rfc4733("1"),
        pause(1000),
        bye(2)
    );
    sipp(&env, &body).await;
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

/// Waits for the adapter's BYE and answers it.
const WAIT_BYE: &str = r#"
  <recv request="BYE" timeout="20000"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
"#;

#[tokio::test(flavor = "multi_thread")]
async fn virtual_hold_turns_the_wait_into_a_callback() {
    let env = Env::start(config()).await;
    let body = format!(
        "{}{}{}{}{WAIT_BYE}",
        pause(500),
        info(2, '1'),
        pause(1500),
        info(3, '1')
    );
    sipp(&env, &body).await;
    let created = env.wait_created(2).await;
    let (waiting, callback) = (&created[0], &created[1]);
    assert_eq!(waiting.queue_hint, "sales");
    assert_eq!(callback.queue_hint, "sales");
    assert_eq!(callback.direction, v1::Direction::Outbound as i32);
    assert_eq!(callback.identifiers[0].value, "+393471234567");
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
async fn bad_calls_get_proper_answers_and_leave_nothing_behind() {
    let env = Env::start(config()).await;
    // Only G.729 offered: 488, no call.
    let g729 = INVITE
        .replace("RTP/AVP 0 96", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000\n", "a=rtpmap:18 G729/8000\n")
        .replace(
            "<recv response=\"200\" rtd=\"true\" rrs=\"true\"/>",
            "<recv response=\"488\"/>",
        );
    let g729 = &g729[..g729.find("<send>").expect("the ACK follows")];
    sipp_scenario(&env, NUMBER, g729).await;
    // A number we do not serve: 404.
    let unknown = INVITE.replace(
        "<recv response=\"200\" rtd=\"true\" rrs=\"true\"/>",
        "<recv response=\"404\"/>",
    );
    let unknown = &unknown[..unknown
        .find("<send>\n    <![CDATA[\n      ACK")
        .expect("ACK")];
    sipp_scenario(&env, "999", unknown).await;
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
    sipp_scenario(&env, NUMBER, options).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.created().is_empty(), "no interaction for refused calls");
    env.stop().await;
}
