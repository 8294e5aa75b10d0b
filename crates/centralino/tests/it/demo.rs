//! `centralino up` with no configuration file: the built-in demo, as a
//! newcomer meets it. Its ports are moved to free ones (CENTRALINO_*
//! variables, as anyone can) so it runs beside the other tests.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use centralino_proto::v1;
use centralino_test_support::agent::{authed, channel};
use centralino_test_support::eventually;
use centralino_test_support::voice::{CallerScript, Ending, Sipp, Step, free_udp_port};

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

struct Up {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn centralino(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_centralino"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CENTRALINO_DATA_DIR", dir)
        .env("NO_COLOR", "1");
    cmd
}

/// The demo's startup lines name a number to call, a ticket to take and a
/// board to look at; the call goes through the IVR to its queue, the ticket
/// to the desk's, and a supervisor sees both waiting; the routing
/// definitions are the file's.
#[tokio::test]
async fn the_demo_answers_a_call_and_a_ticket_and_shows_both_waiting() {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-demo-"));
    let sip_port = free_udp_port();
    let mut child = centralino(&dir)
        .arg("up")
        .env("CENTRALINO_GRPC__LISTEN", "127.0.0.1:0")
        .env("CENTRALINO_VOICE__LISTEN", format!("127.0.0.1:{sip_port}"))
        .env("CENTRALINO_VOICE__RTP_PORTS", "")
        .env(
            "CENTRALINO_DESK__LISTEN",
            format!("127.0.0.1:{}", free_tcp_port()),
        )
        .env(
            "CENTRALINO_SMS__WEBHOOK__LISTEN",
            format!("127.0.0.1:{}", free_tcp_port()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start up");
    let stdout = child.stdout.take().expect("stdout");
    let up = Up {
        child,
        dir: dir.clone(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("press Ctrl-C")) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("the demo printed its startup lines:\n{}", lines.join("\n")),
        }
    }
    let text = lines.join("\n");
    let after = |marker: &str| -> String {
        text.split(marker)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("`{marker}` in:\n{text}"))
            .to_owned()
    };
    let grpc = after("grpc    http://");
    let call = after("call sip:");
    let board = after("board http://");
    assert_eq!(call, format!("100@127.0.0.1:{sip_port}"), "{text}");
    assert!(
        text.contains("centralino token --role agent --subject anna"),
        "{text}"
    );
    assert!(text.contains("email   no mailboxes"), "{text}");
    let desk = board.split('/').next().expect("host:port").to_owned();

    // A caller presses 3 (support) and waits; a walk-in takes ticket A.
    let script = CallerScript::new("100", "+393471234567")
        .steps([
            Step::Pause(1_500),
            Step::Rfc4733("3".into()),
            Step::Pause(30_000),
        ])
        .ending(Ending::Bye);
    let caller = Sipp::spawn(
        &centralino_test_support::voice::sipp_caller_scenario(&script),
        format!("127.0.0.1:{sip_port}").parse().expect("addr"),
        &[],
        Duration::from_secs(60),
    );
    let ticket = reqwest::Client::new()
        .post(format!("http://{desk}/api/sites/demo/tickets"))
        .json(&serde_json::json!({ "service": "A" }))
        .send()
        .await
        .expect("the kiosk API answers");
    assert!(ticket.status().is_success(), "{:?}", ticket.text().await);

    let token = centralino(&dir)
        .args(["token", "--role", "supervisor", "--subject", "sup"])
        .output()
        .expect("token");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    let addr: std::net::SocketAddr = grpc.parse().expect("grpc address");
    // The browser application, with the demo's users printed and created.
    assert!(
        text.contains(&format!("web     http://{addr}/"))
            && text.contains("giulia (supervisor)")
            && text.contains("password centralino-demo"),
        "{text}"
    );
    let mut login = tonic::Request::new(v1::LoginRequest {
        user: "giulia".into(),
        password: "centralino-demo".into(),
    });
    login
        .metadata_mut()
        .insert("origin", format!("http://{addr}").parse().expect("header"));
    let giulia = v1::web_session_service_client::WebSessionServiceClient::new(channel(addr).await)
        .login(login)
        .await
        .expect("the demo's supervisor logs in")
        .into_inner();
    assert_eq!(giulia.role(), v1::Role::Supervisor);
    let sup = v1::supervisor_service_client::SupervisorServiceClient::new(channel(addr).await);
    for (queue, ch) in [
        ("support", v1::Channel::Voice),
        ("desk-info-demo", v1::Channel::Desk),
    ] {
        eventually(
            Duration::from_secs(30),
            &format!("a {ch:?} interaction waits in {queue}"),
            || {
                let mut sup = sup.clone();
                let token = token.clone();
                async move {
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
                    waiting.iter().any(|w| w.channel == ch as i32).then_some(())
                }
            },
        )
        .await;
    }
    // The operator's view of the same: `centralino status` (its token
    // minted from the data directory's key, as on the machine running `up`).
    let grpc_url = format!("http://{grpc}");
    let run = |args: &[&str]| {
        let out = centralino(&dir)
            .args(args)
            .args(["--addr", &grpc_url])
            .output()
            .expect("run");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, status, err) = run(&["status"]);
    assert!(ok, "{err}");
    let waiting = |queue: &str| {
        status
            .lines()
            .find(|l| l.split_whitespace().next() == Some(queue))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    assert_eq!(waiting("support").as_deref(), Some("1"), "{status}");
    assert_eq!(waiting("desk-info-demo").as_deref(), Some("1"), "{status}");
    assert!(status.contains("3 agent(s): 3 offline"), "{status}");
    let (ok, queues, err) = run(&["queues", "list"]);
    assert!(ok, "{err}");
    assert_eq!(
        queues.lines().count(),
        6,
        "a header and five queues:\n{queues}"
    );
    let (ok, dead, err) = run(&["dead-letters", "list"]);
    assert!(ok, "{err}");
    assert!(dead.contains("routing: 0"), "{dead}");
    let (ok, _, err) = run(&["status", "--token", "not-a-token"]);
    assert!(!ok);
    assert!(err.contains("--token"), "says what to do: {err}");

    // The file's definitions are there, and the API may not change them.
    let admin_token = centralino(&dir)
        .args(["token", "--role", "admin", "--subject", "root"])
        .output()
        .expect("token");
    let admin_token = String::from_utf8_lossy(&admin_token.stdout)
        .trim()
        .to_owned();
    let mut admin =
        v1::routing_admin_service_client::RoutingAdminServiceClient::new(channel(addr).await);
    let agents = admin
        .list_agents(authed(v1::ListRequest {}, &admin_token))
        .await
        .expect("agents")
        .into_inner()
        .agents;
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["anna", "marco", "sara"]);
    let err = admin
        .delete_agent(authed(
            v1::DeleteRequest {
                name: "anna".into(),
            },
            &admin_token,
        ))
        .await
        .expect_err("the demo file owns anna");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    drop(caller);
    drop(up);
}

/// `centralino demo` brings the demo to life: customers arrive through the
/// kiosk and the SMS webhook, simulated agents are offered them; it prints a
/// progress line a second and its totals, and stops by itself.
#[test]
fn centralino_demo_generates_traffic_that_agents_are_offered() {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-demo-"));
    let out = centralino(&dir)
        .args(["demo", "--seconds", "6", "--per-minute", "120"])
        .env("CENTRALINO_GRPC__LISTEN", "127.0.0.1:0")
        .env(
            "CENTRALINO_VOICE__LISTEN",
            format!("127.0.0.1:{}", free_udp_port()),
        )
        .env("CENTRALINO_VOICE__RTP_PORTS", "")
        .env(
            "CENTRALINO_DESK__LISTEN",
            format!("127.0.0.1:{}", free_tcp_port()),
        )
        .env(
            "CENTRALINO_SMS__WEBHOOK__LISTEN",
            format!("127.0.0.1:{}", free_tcp_port()),
        )
        .output()
        .expect("run the demo");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progress = text.lines().filter(|l| l.contains("created")).count();
    assert!(progress >= 5, "a progress line a second:\n{text}");
    let totals = text
        .lines()
        .find_map(|l| l.strip_prefix("demo over: "))
        .unwrap_or_else(|| panic!("the totals:\n{text}"));
    let numbers: Vec<u64> = totals
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [
        arrived,
        walk_ins,
        texts,
        tasks,
        calls,
        refused,
        offers,
        _completed,
    ] = numbers[..]
    else {
        panic!("arrived, walk-ins, texts, tasks, calls, refused, offers, completed in {totals:?}");
    };
    assert!(arrived >= 5, "{totals}");
    assert!(
        walk_ins >= 1 && texts >= 1 && tasks >= 1 && calls >= 1,
        "every channel: {totals}"
    );
    assert_eq!(refused, 0, "{totals}");
    assert!(offers >= 3, "{totals}");
}
