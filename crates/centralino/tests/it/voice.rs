//! The `[voice]` section: the shipped example loads and every prompt it can
//! play exists; bad settings are named by their key; and `centralino up` with
//! the voice adapter in the embedded mode (in-process bus, SQLite) answers a
//! SIPp caller, whose call lands in their history timeline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use centralino_proto::v1;
use centralino_telephony::ivr::Action;
use centralino_test_support::voice::{CallerScript, Ending, Step, run_sipp, sipp_caller_scenario};

use crate::email::{history_client, timeline_when};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn prompts() -> PathBuf {
    root().join("deploy/prompts")
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_shipped_voice_config_loads_and_every_prompt_it_plays_exists() {
    let file = root().join("deploy/voice.toml");
    let config = centralino::Config::load(Some(&file), []).unwrap_or_else(|e| panic!("{e}"));
    let voice = config
        .voice
        .voice_config(&config.identity)
        .expect("valid voice settings")
        .expect("the adapter is configured");
    assert_eq!(voice.listen, "127.0.0.1:5060".parse().expect("addr"));
    assert_eq!(voice.media_ip, None);
    assert_eq!(
        voice.rtp_ports,
        Some(10_000..=10_999),
        "what the firewall opens"
    );
    assert_eq!(
        voice.prompts_dir,
        Path::new("/usr/share/centralino/prompts"),
        "where docker-compose mounts them"
    );
    assert_eq!(voice.default_flow, None);
    assert_eq!(voice.numbers.len(), 2);
    assert!(voice.numbers.iter().all(|n| n.flow == "main"));
    assert_eq!(voice.agents.len(), 2);
    assert_eq!(voice.hold.callback_key, Some('1'));
    assert_eq!(
        voice.trunk.as_deref(),
        Some("sip:{number}@gateway.example.com:5060"),
        "callbacks are placed through the trunk"
    );
    assert_eq!(voice.ring_timeout, Duration::from_secs(20));
    let main = &voice.flows["main"];
    assert_eq!(main.start, "root");
    let root_menu = &main.menus["root"];
    let queue = |q: &str, priority| Action::Queue {
        queue: q.into(),
        priority,
    };
    assert_eq!(root_menu.options[&'1'], queue("sales", 10));
    assert_eq!(root_menu.options[&'2'], Action::Menu("billing".into()));
    assert_eq!(root_menu.options[&'3'], queue("support", 0));
    assert_eq!(root_menu.options[&'0'], Action::Repeat);
    assert_eq!(root_menu.default, queue("support", 0));
    assert_eq!(main.menus["billing"].options[&'2'], queue("payments", 20));

    // Every prompt it can play is in deploy/prompts and readable.
    let mut names: Vec<&str> = voice
        .flows
        .values()
        .flat_map(|f| f.prompt_names())
        .collect();
    let h = &voice.hold;
    names.extend(
        h.please_hold
            .iter()
            .chain(&h.callback_prompt)
            .chain(&h.callback_confirmed)
            .chain(&h.closed_prompt)
            .map(String::as_str),
    );
    names.push(&h.music);
    names.extend(centralino_telephony::announce::all_prompt_names());
    for name in names {
        let path = prompts().join(format!("{name}.wav"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        centralino_telephony::wav::parse(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    // Scalar settings from the environment, as compose passes them.
    let config = centralino::Config::load(
        Some(&file),
        env(&[
            ("CENTRALINO_VOICE__LISTEN", "0.0.0.0:5062"),
            ("CENTRALINO_VOICE__MEDIA_IP", "192.0.2.10"),
            ("CENTRALINO_VOICE__PROMPTS_DIR", "deploy/prompts"),
            ("CENTRALINO_VOICE__RING_TIMEOUT_SECS", "30"),
            ("CENTRALINO_VOICE__MAX_CALLS", "20"),
            ("CENTRALINO_VOICE__HOLD__ANNOUNCE_EVERY_SECS", "45"),
            ("CENTRALINO_VOICE__HOLD__CALLBACK_KEY", ""),
        ]),
    )
    .unwrap_or_else(|e| panic!("with the overrides: {e}"));
    let voice = config
        .voice
        .voice_config(&config.identity)
        .expect("valid")
        .expect("configured");
    assert_eq!(voice.listen, "0.0.0.0:5062".parse().expect("addr"));
    assert_eq!(voice.media_ip, Some("192.0.2.10".parse().expect("ip")));
    assert_eq!(voice.prompts_dir, Path::new("deploy/prompts"));
    assert_eq!(voice.ring_timeout, Duration::from_secs(30));
    assert_eq!(voice.max_calls, 20);
    assert_eq!(voice.hold.announce_every, Duration::from_secs(45));
    assert_eq!(voice.hold.callback_key, None);

    let names = centralino::Config::env_names();
    for n in [
        "CENTRALINO_VOICE__LISTEN",
        "CENTRALINO_VOICE__MEDIA_IP",
        "CENTRALINO_VOICE__PROMPTS_DIR",
    ] {
        assert!(names.contains(&n.to_owned()), "{n}");
    }
}

/// A valid `[voice]` section the cases below spoil one way each.
const BASE: &str = r#"
[voice]
listen = "127.0.0.1:5090"

[[voice.numbers]]
number = "100"
flow = "main"

[voice.agents]
alice = "sip:alice@127.0.0.1:5070"

[voice.flows.main]
start = "root"

[voice.flows.main.menus.root]
prompt = ["menu/welcome"]
default = "queue:support"

[voice.flows.main.menus.root.options]
"1" = "queue:sales:10"
"2" = "menu:root"
"#;

fn load(text: &str) -> Result<centralino::Config, String> {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("cfg"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("voice.toml");
    std::fs::write(&file, text).expect("write");
    let result = centralino::Config::load(Some(&file), []).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn bad_voice_settings_are_named() {
    let config = load(BASE).unwrap_or_else(|e| panic!("the base case is valid: {e}"));
    assert!(
        config
            .voice
            .voice_config(&config.identity)
            .is_ok_and(|v| v.is_some())
    );
    // An empty [voice] section runs nothing.
    let config = load("[voice]\nlisten = \"127.0.0.1:5090\"\n").expect("valid");
    assert!(matches!(
        config.voice.voice_config(&config.identity),
        Ok(None)
    ));

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "bad listen",
            "listen = \"127.0.0.1:5090\"",
            &["listen = \"sip.example.com\""],
        ),
        (
            "unknown flow in numbers",
            "flow = \"main\"",
            &["flow = \"mian\""],
        ),
        (
            "bad action strings",
            "\"2\" = \"menu:root\"",
            &[
                "\"2\" = \"menu:nowhere\"",
                "\"5\" = \"queue:\"",
                "\"6\" = \"queue:sales:high\"",
                "\"7\" = \"transfer\"",
                "\"12\" = \"repeat\"",
            ],
        ),
        (
            "wildcard listen without media_ip",
            "listen = \"127.0.0.1:5090\"",
            &["listen = \"0.0.0.0:5060\""],
        ),
        (
            "an agent's phone that is not a SIP URI",
            "alice = \"sip:alice@127.0.0.1:5070\"",
            &["alice = \"not a uri\""],
        ),
        (
            "a callback key that is not one key",
            "[voice.agents]",
            &["[voice.hold]\ncallback_key = \"12\"\n\n[voice.agents]"],
        ),
        (
            "callbacks with no trunk to place them",
            "[voice.agents]",
            &["[voice.hold]\ncallback_key = \"1\"\n\n[voice.agents]"],
        ),
        (
            "an unknown transfer mode",
            "listen = \"127.0.0.1:5090\"",
            &["listen = \"127.0.0.1:5090\"\ntransfer = \"blind\""],
        ),
        (
            "a trunk without {number}",
            "listen = \"127.0.0.1:5090\"",
            &["listen = \"127.0.0.1:5090\"\ntrunk = \"sip:gateway.example.com\""],
        ),
        (
            "an RTP port range that is not a range",
            "listen = \"127.0.0.1:5090\"",
            &["listen = \"127.0.0.1:5090\"\nrtp_ports = \"10000\""],
        ),
        (
            "an RTP port range too small for one bridged call",
            "listen = \"127.0.0.1:5090\"",
            &["listen = \"127.0.0.1:5090\"\nrtp_ports = \"10001-10003\""],
        ),
        (
            "a misspelt setting",
            "default = \"queue:support\"",
            &["default = \"queue:support\"\ntimeout = 5"],
        ),
        (
            "a misspelt section",
            "[voice.flows.main]",
            &["[voice.not_flows.main]"],
        ),
    ];
    let expected: &[&[&str]] = &[
        &["voice.listen: \"sip.example.com\" is not an address like 0.0.0.0:5060"],
        &["voice.numbers[0].flow: \"mian\""],
        &[
            "voice.flows.main.menus.root.options.2: menu \"nowhere\" is not defined",
            "voice.flows.main.menus.root.options.5: \"queue:\" has no queue name",
            "voice.flows.main.menus.root.options.6: \"queue:sales:high\": the priority must be 0–100",
            "voice.flows.main.menus.root.options.7: \"transfer\" is not an action",
            "voice.flows.main.menus.root.options.12: \"12\" is not a keypad key",
        ],
        &["voice.media_ip: required when voice.listen (0.0.0.0:5060) is a wildcard"],
        &["voice.agents.alice: \"not a uri\" is not a SIP URI"],
        &["voice.hold.callback_key: \"12\" is not one key"],
        &["voice.trunk: required when voice.hold.callback_key offers callbacks"],
        &["voice.transfer: \"blind\" must be `bridge` or `refer`"],
        &["voice.trunk: \"sip:gateway.example.com\" is not a SIP URI with {number}"],
        &["voice.rtp_ports: \"10000\" is not a port range like 10000-10999"],
        &["voice.rtp_ports: 10001-10003 must be ports from 1024 holding at least 2 even ones"],
        &["unknown field `timeout`"],
        &["unknown field `not_flows`"],
    ];
    for ((what, from, to), expected) in cases.iter().zip(expected) {
        assert!(BASE.contains(from), "{what}: {from} is in the base case");
        let text = BASE.replace(from, &to.join("\n"));
        let err = load(&text).expect_err(what);
        for e in *expected {
            assert!(err.contains(e), "{what}: {e:?} is named in:\n{err}");
        }
    }
    // Numbers without any flow: the section says what is missing.
    let err = load("[[voice.numbers]]\nnumber = \"100\"\nflow = \"main\"\n").expect_err("no flows");
    assert!(err.contains("voice: [voice.flows] is needed"), "{err}");
}

/// `centralino up` with a `[voice]` section: a caller (SIPp) chooses sales
/// with a SIP INFO key and hangs up while waiting; history shows the call,
/// abandoned, with the IVR path, in the caller's timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_answers_a_call_and_history_records_it() {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-up-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [voice]\nlisten = \"127.0.0.1:0\"\nprompts_dir = {prompts:?}\n\
             [[voice.numbers]]\nnumber = \"100\"\nflow = \"main\"\n\
             [voice.flows.main]\nstart = \"root\"\ngoodbye = [\"menu/goodbye\"]\n\
             [voice.flows.main.menus.root]\nprompt = [\"menu/welcome\", \"menu/options\"]\n\
             timeout_ms = 10000\nretries = 0\ndefault = \"hangup\"\n\
             [voice.flows.main.menus.root.options]\n\"1\" = \"queue:sales:10\"\n",
            data = dir.display().to_string(),
            prompts = prompts().display().to_string(),
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    let sip = running.voice_sip.expect("the voice adapter runs");
    assert!(sip.ip().is_loopback() && sip.port() != 0, "{sip}");

    let caller = CallerScript::new("100", "+393471234567")
        .steps([Step::Pause(800), Step::Info('1'), Step::Pause(1500)])
        .ending(Ending::Bye);
    run_sipp(
        &sipp_caller_scenario(&caller),
        sip,
        &[],
        Duration::from_secs(30),
    )
    .await
    .assert_success();

    let (history, authed) = history_client(&config, &running).await;
    let timeline = timeline_when(
        &history,
        &authed,
        v1::CustomerIdentifier {
            kind: v1::customer_identifier::Kind::Phone as i32,
            value: "347 123 4567".into(),
        },
        "the call, abandoned and ended, in the caller's timeline",
        |t| {
            t.interactions
                .first()
                .is_some_and(|i| i.status == "abandoned" && !i.ivr_path.is_empty())
        },
    )
    .await;
    let call = &timeline.interactions[0];
    assert_eq!(call.channel, v1::Channel::Voice as i32);
    assert_eq!(call.queue, "sales");
    assert_eq!(call.ivr_path, ["root:1"]);
    assert_eq!(call.outcome, "abandoned");
    let _ = stop.send(());
    let _ = running.task.await;
    let _ = std::fs::remove_dir_all(dir);
}
