//! The browser application's server side through `up`: users added on the
//! command line, logging in for a cookie, what the cookie may do and from
//! where, the lockout, and the application's files with their headers.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use centralino_auth::{Role, TokenKey};
use centralino_proto::v1;
use centralino_proto::v1::routing_admin_service_client::RoutingAdminServiceClient;
use centralino_proto::v1::user_admin_service_client::UserAdminServiceClient;
use centralino_proto::v1::web_session_service_client::WebSessionServiceClient;
use tonic::Code;
use tonic::transport::Channel;

const SECRET: &str = "web-tests-secret-0123456789abcdef0123";
const PASSWORD: &str = "correct horse battery";

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n[auth]\nsecret = {SECRET:?}\n",
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

    // Twenty bad passwords: locked out, with when, even for the right one.
    let mut codes = Vec::new();
    for n in 0..20 {
        let e = web
            .login(with(
                login("anna", &format!("guess number {n}")),
                &[("origin", &origin)],
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
