//! The browser application's server side through `up`: users added on the
//! command line, logging in for a cookie, what the cookie may do and from
//! where, the lockout, and the application's files with their headers.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use centralino_auth::{Role, TokenKey};
use centralino_proto::v1;
use centralino_proto::v1::routing_admin_service_client::RoutingAdminServiceClient;
use centralino_proto::v1::user_admin_service_client::UserAdminServiceClient;
use centralino_proto::v1::web_session_service_client::WebSessionServiceClient;
use centralino_test_support::browser::Desktop;
use tonic::Code;
use tonic::transport::Channel;

const SECRET: &str = "web-tests-secret-0123456789abcdef0123";
const PASSWORD: &str = "correct horse battery";
const WAIT: Duration = Duration::from_secs(30);

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n\
             [auth]\nsecret = {SECRET:?}\n",
            data = dir.display().to_string(),
        ),
    )
    .expect("config file");
    file
}

/// `centralino user …` with `stdin` as its input; its standard output.
fn user(file: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_centralino"))
        .arg("--config")
        .arg(file)
        .arg("user")
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run centralino user");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "centralino user {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn with<T>(msg: T, headers: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    for (k, v) in headers {
        r.metadata_mut()
            .insert(*k, v.parse().expect("header value"));
    }
    r
}

/// The session cookie a login answered with (`name=value`), and its attributes.
fn session_cookie(response: &tonic::Response<v1::LoginReply>) -> (String, String) {
    let set = response
        .metadata()
        .get("set-cookie")
        .expect("login sets a cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    let (pair, attributes) = set.split_once(';').expect("attributes");
    (pair.to_owned(), attributes.to_owned())
}

/// One HTTP/1.1 request; the status, the headers (lowercased names) and the body.
fn http(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sessions_are_cookies_from_this_origin_that_end_and_lock_out() {
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-web-"));
    let file = write_config(&dir);
    let added = user(
        &file,
        &[
            "add",
            "anna",
            "--role",
            "agent",
            "--display-name",
            "Anna Rossi",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(added.contains("anna") && added.contains("agent"), "{added}");
    user(
        &file,
        &["add", "sara", "--role", "supervisor"],
        &format!("{PASSWORD}\n"),
    );
    let listed = user(&file, &["list"], "");
    assert!(
        listed.contains("anna") && listed.contains("sara"),
        "{listed}"
    );

    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    let addr = running.grpc_addr;
    let origin = format!("http://{addr}");
    let channel = Channel::from_shared(origin.clone())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut web = WebSessionServiceClient::new(channel.clone());
    let login = |name: &str, password: &str| v1::LoginRequest {
        user: name.into(),
        password: password.into(),
    };

    // A wrong password and an unknown user get the same answer.
    for (name, password) in [("anna", "not her password"), ("nobody", PASSWORD)] {
        let e = web
            .login(with(login(name, password), &[("origin", &origin)]))
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert_eq!(e.message(), "wrong user name or password");
    }

    // Logging in: an HttpOnly, SameSite=Strict cookie, not Secure on loopback.
    let answer = web
        .login(with(login("anna", PASSWORD), &[("origin", &origin)]))
        .await
        .expect("anna logs in");
    let (cookie, attributes) = session_cookie(&answer);
    let reply = answer.into_inner();
    assert_eq!(reply.user, "anna");
    assert_eq!(reply.display_name, "Anna Rossi");
    assert_eq!(reply.role(), v1::Role::Agent);
    assert!(cookie.starts_with("centralino_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(attributes.contains(attribute), "{attributes}");
    }
    assert!(
        !attributes.contains("Secure"),
        "plain HTTP on loopback: {attributes}"
    );

    let me = web
        .me(with(
            v1::MeRequest {},
            &[("origin", origin.as_str()), ("cookie", cookie.as_str())],
        ))
        .await
        .expect("the cookie is a session")
        .into_inner();
    assert_eq!(me.user, "anna");

    // Refusals: no session; a cookie without an Origin; another origin.
    let e = web
        .me(with(v1::MeRequest {}, &[("origin", &origin)]))
        .await
        .expect_err("no session");
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = web
        .me(with(v1::MeRequest {}, &[("cookie", &cookie)]))
        .await
        .expect_err("no origin");
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = web
        .me(with(
            v1::MeRequest {},
            &[("cookie", &cookie), ("origin", "https://evil.example")],
        ))
        .await
        .expect_err("cross-origin");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("cross-origin"), "{}", e.message());

    // An agent's session on admin APIs.
    let mut routing_admin = RoutingAdminServiceClient::new(channel.clone());
    let e = routing_admin
        .list_queues(with(
            v1::ListRequest {},
            &[("origin", origin.as_str()), ("cookie", cookie.as_str())],
        ))
        .await
        .expect_err("an agent is no admin");
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut users = UserAdminServiceClient::new(channel.clone());
    let e = users
        .list_users(with(
            v1::ListUsersRequest {},
            &[("origin", origin.as_str()), ("cookie", cookie.as_str())],
        ))
        .await
        .expect_err("an agent is no admin");
    assert_eq!(e.code(), Code::PermissionDenied);

    // Logging out ends the session: the same cookie is refused after.
    let out = web
        .logout(with(
            v1::LogoutRequest {},
            &[("origin", origin.as_str()), ("cookie", cookie.as_str())],
        ))
        .await
        .expect("logout");
    let cleared = out
        .metadata()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let e = web
        .me(with(
            v1::MeRequest {},
            &[("origin", origin.as_str()), ("cookie", cookie.as_str())],
        ))
        .await
        .expect_err("logged out");
    assert_eq!(e.code(), Code::Unauthenticated);

    // An admin disables sara: her live session ends at once.
    let sara = web
        .login(with(login("sara", PASSWORD), &[("origin", &origin)]))
        .await
        .expect("sara logs in");
    let (sara_cookie, _) = session_cookie(&sara);
    let key = TokenKey::new(SECRET.as_bytes().to_vec()).expect("key");
    let admin = key
        .mint("root", Role::Admin, chrono::Utc::now().timestamp(), 600)
        .expect("token");
    let bearer = format!("Bearer {admin}");
    let disabled = users
        .set_user_enabled(with(
            v1::SetUserEnabledRequest {
                name: "sara".into(),
                enabled: false,
            },
            &[("authorization", &bearer)],
        ))
        .await
        .expect("disable")
        .into_inner();
    assert!(!disabled.enabled);
    let e = web
        .me(with(
            v1::MeRequest {},
            &[
                ("origin", origin.as_str()),
                ("cookie", sara_cookie.as_str()),
            ],
        ))
        .await
        .expect_err("disabled");
    assert_eq!(e.code(), Code::Unauthenticated);

    // A new password ends the sessions opened with the old one.
    let anna_again = web
        .login(with(login("anna", PASSWORD), &[("origin", &origin)]))
        .await
        .expect("anna logs in");
    let (anna_cookie, _) = session_cookie(&anna_again);
    users
        .set_password(with(
            v1::SetPasswordRequest {
                name: "anna".into(),
                password: PASSWORD.into(),
            },
            &[("authorization", &bearer)],
        ))
        .await
        .expect("set password");
    let e = web
        .me(with(
            v1::MeRequest {},
            &[
                ("origin", origin.as_str()),
                ("cookie", anna_cookie.as_str()),
            ],
        ))
        .await
        .expect_err("the old session ended");
    assert_eq!(e.code(), Code::Unauthenticated);

    // Guesses sent at once each count: twelve together lock the user. They
    // come through this host as a trusted proxy for another client, whose
    // own attempts are counted apart.
    user(
        &file,
        &["add", "luca", "--role", "agent"],
        &format!("{PASSWORD}\n"),
    );
    let guesses: Vec<_> = (0..12)
        .map(|n| {
            let mut web = web.clone();
            let origin = origin.clone();
            tokio::spawn(async move {
                web.login(with(
                    v1::LoginRequest {
                        user: "luca".into(),
                        password: format!("parallel guess {n}"),
                    },
                    &[("origin", &origin), ("x-forwarded-for", "198.51.100.9")],
                ))
                .await
                .expect_err("a bad password")
                .code()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for g in guesses {
        codes.push(g.await.expect("a guess"));
    }
    assert!(
        codes
            .iter()
            .all(|c| matches!(c, Code::Unauthenticated | Code::ResourceExhausted)),
        "{codes:?}"
    );
    let listed = users
        .list_users(with(v1::ListUsersRequest {}, &[("authorization", &bearer)]))
        .await
        .expect("list")
        .into_inner();
    let luca = listed
        .users
        .iter()
        .find(|u| u.name == "luca")
        .expect("luca");
    assert!(
        luca.locked_until.is_some(),
        "every parallel guess counted: {luca:?}"
    );

    // A name that is no user locks the same way (a lock tells nothing).
    let mut last = Code::Ok;
    for n in 0..10 {
        last = web
            .login(with(
                login("nobody-here", &format!("guess {n}")),
                &[("origin", &origin), ("x-forwarded-for", "198.51.100.10")],
            ))
            .await
            .expect_err("no such user")
            .code();
    }
    assert_eq!(last, Code::ResourceExhausted, "unknown names lock too");

    // Twenty bad passwords: locked out, with when, even for the right one
    // (from a client of its own behind this host as a trusted proxy).
    let mut codes = Vec::new();
    for n in 0..20 {
        let e = web
            .login(with(
                login("anna", &format!("guess number {n}")),
                &[("origin", &origin), ("x-forwarded-for", "198.51.100.11")],
            ))
            .await
            .expect_err("a bad password");
        codes.push(e.code());
        if n >= 9 {
            assert_eq!(
                e.code(),
                Code::ResourceExhausted,
                "attempt {}: {e:?}",
                n + 1
            );
            assert!(
                e.message().contains("locked until") && e.message().contains("UTC"),
                "{}",
                e.message()
            );
        }
    }
    assert!(
        codes[..9].iter().all(|c| *c == Code::Unauthenticated),
        "{codes:?}"
    );
    let e = web
        .login(with(login("anna", PASSWORD), &[("origin", &origin)]))
        .await
        .expect_err("locked, even with the right password");
    assert_eq!(e.code(), Code::ResourceExhausted);
    let listed = users
        .list_users(with(v1::ListUsersRequest {}, &[("authorization", &bearer)]))
        .await
        .expect("list")
        .into_inner();
    let anna = listed
        .users
        .iter()
        .find(|u| u.name == "anna")
        .expect("anna");
    assert!(anna.locked_until.is_some(), "the lock shows: {anna:?}");
    // Enabling lifts the lock.
    users
        .set_user_enabled(with(
            v1::SetUserEnabledRequest {
                name: "anna".into(),
                enabled: true,
            },
            &[("authorization", &bearer)],
        ))
        .await
        .expect("enable");
    web.login(with(login("anna", PASSWORD), &[("origin", &origin)]))
        .await
        .expect("anna logs in again");

    // The application's files, over HTTP/1.1, with their headers.
    let get = |path: &str| {
        http(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
            b"",
        )
    };
    let (status, headers, body) = get("/");
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").is_some_and(|t| t.starts_with("text/html")));
    let csp = header(&headers, "content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    assert!(
        String::from_utf8_lossy(&body).contains("<html")
            || String::from_utf8_lossy(&body).contains("<!doctype")
    );
    let etag = header(&headers, "etag").expect("an etag").to_owned();
    let (status, _, _) = http(
        addr,
        &format!(
            "GET /desk HTTP/1.1\r\nHost: {addr}\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    assert_eq!(status, 304, "an app route is index.html, unchanged");
    assert_eq!(get("/assets/no-such-file.js").0, 404);
    let (status, _, _) = http(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    assert_eq!(status, 405);

    // gRPC-web over HTTP/1.1 reaches the same checks: no session, refused.
    let (status, headers, _) = http(
        addr,
        &format!(
            "POST /centralino.v1.WebSessionService/Me HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nOrigin: {origin}\r\n\
             Content-Length: 5\r\nConnection: close\r\n\r\n"
        ),
        &[0, 0, 0, 0, 0],
    );
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "grpc-status"), Some("16"), "{headers:?}");

    let _ = stop.send(());
    let _ = running.task.await;
    let _ = std::fs::remove_dir_all(dir);
}

fn desktop_config(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n[auth]\nsecret = {SECRET:?}\n\
             [routing]\noffer_timeout_ms = \"task=90000\"\nsession_grace_ms = 60000\n\
             [[routing.skills]]\nname = \"backoffice\"\n\
             [[routing.queues]]\nname = \"support\"\nchannels = [\"task\"]\n\
             [[routing.queues]]\nname = \"backoffice\"\nchannels = [\"task\"]\nskills = {{ backoffice = 1 }}\n\
             [[routing.queues]]\nname = \"desk-a-casa\"\nchannels = [\"desk\"]\n\
             [[routing.agents]]\nname = \"anna\"\ndisplay_name = \"Anna Rossi\"\ncapacity = {{ task = 3, desk = 1 }}\n\
             [desk]\nlisten = \"127.0.0.1:0\"\n\
             [[desk.sites]]\nid = \"casa\"\ntimezone = \"UTC\"\nopens = \"00:00\"\ncloses = \"23:59\"\ncounters = [\"1\"]\n\
             [[desk.services]]\ncode = \"A\"\nname = \"Payments\"\nqueue = \"desk-a-{{site}}\"\n",
            data = dir.display().to_string(),
        ),
    )
    .expect("config file");
    file
}

/// The desktop, the wallboard and the refusals in a real browser: an agent
/// logs in, goes available, is offered a task (countdown, ring, title
/// badge), accepts, reads the timeline, completes with a disposition; a
/// supervisor's wallboard shows a new waiting task within a second; an
/// agent on the admin screen is refused; the browser's network is cut for
/// 30 s while a task is offered, and after it the offer is on screen, no
/// event applied twice; the supervisor sets the agent not ready from the
/// wallboard; a walk-in's ticket is recalled and served from the desktop; a
/// second tab of the agent takes the work until the first is used again.
/// Each screen passes an axe-core scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_and_wallboard_work_in_chromium_through_a_network_cut() {
    use centralino_proto::v1::interaction_service_client::InteractionServiceClient;

    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-desktop-"));
    let file = desktop_config(&dir);
    user(
        &file,
        &[
            "add",
            "anna",
            "--role",
            "agent",
            "--display-name",
            "Anna Rossi",
        ],
        &format!("{PASSWORD}\n"),
    );
    user(
        &file,
        &["add", "sara", "--role", "supervisor"],
        &format!("{PASSWORD}\n"),
    );
    user(
        &file,
        &["add", "root", "--role", "admin"],
        &format!("{PASSWORD}\n"),
    );
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    let addr = running.grpc_addr;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let key = TokenKey::new(SECRET.as_bytes().to_vec()).expect("key");
    let integrator = key
        .mint("crm", Role::Integrator, chrono::Utc::now().timestamp(), 600)
        .expect("token");
    let mut tasks = InteractionServiceClient::new(channel);
    let mut create = async |queue: &str, title: &str| -> String {
        let mut request = tonic::Request::new(v1::CreateTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            title: title.into(),
            queue: queue.into(),
            identifiers: vec![v1::CustomerIdentifier {
                kind: v1::customer_identifier::Kind::Phone as i32,
                value: "+393471234567".into(),
            }],
            ..Default::default()
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {integrator}").parse().expect("header"),
        );
        tasks
            .create_task(request)
            .await
            .expect("task created")
            .into_inner()
            .task_id
    };

    let mut browser = Desktop::start(addr);
    browser.ask("open");
    browser.ask("axe login");
    browser.ask(&format!("login anna {PASSWORD}"));
    browser.ask("axe desktop");
    let first = create("support", "Call back about the invoice").await;
    let shown_ms = browser.ask(&format!("offer {first}"));
    eprintln!("desktop: the first task's offer on screen {shown_ms} ms after it was created");

    // A walk-in's ticket: the counter opens, the ticket is offered, recalled,
    // served and completed from the desktop.
    browser.ask("counter casa 1");
    let http = running.desk_http.expect("the desk runs");
    let kiosk = key
        .mint(
            "kiosk-casa",
            Role::Kiosk,
            chrono::Utc::now().timestamp(),
            600,
        )
        .expect("token");
    let ticket: centralino_desk::TicketView = reqwest::Client::new()
        .post(format!("http://{http}/api/sites/casa/tickets"))
        .header("authorization", format!("Bearer {kiosk}"))
        .json(&serde_json::json!({ "service": "A" }))
        .send()
        .await
        .expect("the kiosk answers")
        .json()
        .await
        .expect("a ticket");
    let served = browser.ask(&format!("ticket {}", ticket.id));
    assert!(
        served.starts_with(&format!("{} ", ticket.label)) && served.contains("serving"),
        "the desk ticket handled from the desktop: {served}"
    );

    let refusal = browser.ask("refused");
    assert!(
        refusal.starts_with("7 ") && refusal.contains("role agent may not"),
        "the admin API refuses an agent's session with PERMISSION_DENIED: {refusal}"
    );

    browser.ask("twotabs");

    browser.ask(&format!("wall sara {PASSWORD}"));
    browser.ask("axe wallboard");
    create("backoffice", "Check the contract").await;
    let changed_ms: u64 = browser.ask("waiting backoffice 1").parse().expect("ms");
    eprintln!("wallboard: waiting count changed {changed_ms} ms after the task was created");
    assert!(
        changed_ms <= 1_000,
        "the wallboard changes within a second: {changed_ms} ms"
    );

    browser.ask(&format!("admin root {PASSWORD}"));
    browser.ask("axe admin");

    // The network goes for 30 s while a task is offered: the desktop
    // reconnects after it and resumes (no snapshot), nothing received twice.
    browser.ask("show desk");
    let before: Vec<u64> = browser
        .ask("counts")
        .split(' ')
        .map(|n| n.parse().expect("a count"))
        .collect();
    browser.ask("cut");
    let during = create("support", "Arrived while the network was down").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    browser.ask("restore");
    let after: Vec<u64> = browser
        .ask(&format!("seen {during}"))
        .split(' ')
        .map(|n| n.parse().expect("a count"))
        .collect();
    eprintln!(
        "after the cut: the offer is on screen; {} events applied, snapshots {} → {}, streams {} → {}",
        after[0], before[0], after[1], before[1], after[2]
    );
    assert!(
        after[2] > before[1],
        "the desktop reconnected after the cut"
    );
    assert_eq!(after[1], before[0], "it resumed: no snapshot after the cut");

    // The supervisor sets anna not ready from the wallboard.
    let ms = browser.ask("supervise anna");
    eprintln!("supervisor: anna not ready on both screens {ms} ms after the click");

    drop(browser);
    let _ = stop.send(());
    let _ = running.task.await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The desktop answers work from real peers: an email delivered through
/// Dovecot, replied to from the browser, reaches the SMTP server threaded
/// under the customer's message; an SMS from the SMSC simulator, answered
/// with a long text, leaves in as many segments as the desktop showed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_answers_an_email_and_an_sms_from_real_peers() {
    use centralino_test_support::eventually;
    use centralino_test_support::mail::{Dovecot, PASSWORD as MAILBOX_PASSWORD, Smsc, SmtpSink};

    const SUPPORT: &str = "support@example.test";
    let dovecot = Dovecot::start(&[SUPPORT]);
    let smtp = SmtpSink::start();
    let smsc = Smsc::start();
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-desktop-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n[auth]\nsecret = {SECRET:?}\n\
             [email]\npoll_interval_secs = 1\n\
             [email.smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\nsecurity = \"plain\"\n\
             [[email.mailboxes]]\nname = \"support\"\naddress = \"{SUPPORT}\"\nqueue = \"support\"\n\
             host = \"127.0.0.1\"\nport = {imap}\nsecurity = \"plain\"\nuser = \"{SUPPORT}\"\npassword = \"{MAILBOX_PASSWORD}\"\n\
             [sms]\nnumbers = [{{ number = \"4321\", queue = \"support\" }}]\n\
             [sms.smpp]\nhost = \"127.0.0.1\"\nport = {smpp}\nsystem_id = \"centralino\"\npassword = \"secret\"\n\
             [[routing.queues]]\nname = \"support\"\nchannels = [\"email\", \"sms\"]\n\
             [[routing.agents]]\nname = \"anna\"\ndisplay_name = \"Anna Rossi\"\ncapacity = {{ email = 2, sms = 2 }}\n",
            data = dir.display().to_string(),
            smtp = smtp.port(),
            imap = dovecot.port(),
            smpp = smsc.port(),
        ),
    )
    .expect("config file");
    user(
        &file,
        &["add", "anna", "--role", "agent"],
        &format!("{PASSWORD}\n"),
    );
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    let mut browser = Desktop::start(running.grpc_addr);
    browser.ask(&format!("login anna {PASSWORD}"));

    // An email through Dovecot, answered from the desktop.
    crate::email::append(
        dovecot.port(),
        SUPPORT,
        "From: Lucia Bianchi <lucia@example.test>\r\nTo: support@example.test\r\n\
         Subject: Contratto\r\nMessage-ID: <desktop-1@example.test>\r\n\r\nVorrei disdire.\r\n",
    )
    .await;
    let (history, authed) = crate::email::history_client(&config, &running).await;
    let email = crate::email::timeline_when(
        &history,
        &authed,
        v1::CustomerIdentifier {
            kind: v1::customer_identifier::Kind::Email as i32,
            value: "lucia@example.test".into(),
        },
        "the email in Lucia's timeline",
        |t| !t.interactions.is_empty(),
    )
    .await
    .interactions[0]
        .id
        .clone();
    let shown = browser.ask(&format!(
        "reply {email} Gentile Lucia, la disdetta è registrata."
    ));
    assert_eq!(shown, "-", "no SMS counter on an email");
    let sent = eventually(WAIT, "the reply at the SMTP server", || async {
        smtp.messages()
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .find(|m| m.contains("la disdetta"))
    })
    .await;
    let header = |name: &str| {
        sent.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .map(|l| l[name.len() + 1..].trim().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("in-reply-to"), "<desktop-1@example.test>", "{sent}");
    assert!(
        header("references").contains("<desktop-1@example.test>"),
        "{sent}"
    );
    assert!(header("subject").starts_with("Re: Contratto"), "{sent}");
    assert!(header("to").contains("lucia@example.test"), "{sent}");

    // An SMS from the SMSC, answered with two segments' worth of text.
    eventually(WAIT, "the SMS adapter bound to the SMSC", || async {
        smsc.mobile_originated("393331234567", "4321", "Il pacco non è arrivato")
            .then_some(())
    })
    .await;
    let sms = crate::email::timeline_when(
        &history,
        &authed,
        v1::CustomerIdentifier {
            kind: v1::customer_identifier::Kind::Phone as i32,
            value: "+393331234567".into(),
        },
        "the SMS in the customer's timeline",
        |t| !t.interactions.is_empty(),
    )
    .await
    .interactions[0]
        .id
        .clone();
    let text = "Gentile cliente, il pacco è in consegna oggi entro le 18. \
                Per cambiare l'orario risponda a questo messaggio con il nuovo orario \
                preferito; per parlare con un operatore chiami il numero verde. Grazie!";
    let shown: usize = browser
        .ask(&format!("reply {sms} {text}"))
        .parse()
        .expect("a segment count");
    assert_eq!(
        shown,
        centralino_gsm::encode(text).segment_count(),
        "the desktop counts as the SMS adapter cuts"
    );
    assert!(shown >= 2, "a long reply: {shown} segment(s)");
    let parts = eventually(WAIT, "the reply's segments at the SMSC", || async {
        let parts: Vec<serde_json::Value> =
            serde_json::from_str::<Vec<serde_json::Value>>(&smsc.submitted())
                .expect("JSON from the simulator")
                .into_iter()
                .filter(|p| p["destination"] == "393331234567")
                .collect();
        (parts.len() >= shown).then_some(parts)
    })
    .await;
    assert_eq!(parts.len(), shown, "the SMSC got as many segments as shown");

    drop(browser);
    let _ = stop.send(());
    let _ = running.task.await;
    let _ = std::fs::remove_dir_all(dir);
}
