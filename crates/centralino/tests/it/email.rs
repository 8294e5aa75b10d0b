//! `centralino up` in embedded mode (SQLite, in-process bus) with a mailbox on a
//! real Dovecot: an email becomes an interaction in the customer's history.

use std::time::Duration;

use centralino_proto::v1;
use centralino_proto::v1::history_service_client::HistoryServiceClient;
use centralino_test_support::eventually;
use centralino_test_support::mail::{Dovecot, PASSWORD, SmtpSink};

const SUPPORT: &str = "support@example.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_imports_a_mailbox_into_history() {
    let dovecot = Dovecot::start(&[SUPPORT]);
    let smtp = SmtpSink::start();
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-up-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [email]\npoll_interval_secs = 1\nack_subject = \"Ricevuto: {{subject}}\"\nack_body = \"Grazie\"\n\
             [email.smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\nsecurity = \"plain\"\n\
             [[email.mailboxes]]\nname = \"support\"\naddress = \"{SUPPORT}\"\nqueue = \"support\"\n\
             host = \"127.0.0.1\"\nport = {imap}\nsecurity = \"plain\"\nuser = \"{SUPPORT}\"\npassword = \"{PASSWORD}\"\n",
            data = dir.display().to_string(),
            smtp = smtp.port(),
            imap = dovecot.port(),
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;

    append(
        dovecot.port(),
        SUPPORT,
        "From: Lucia Bianchi <lucia@example.test>\r\nTo: support@example.test\r\n\
         Subject: Contratto\r\nMessage-ID: <up-1@example.test>\r\n\r\nVorrei disdire.\r\n",
    )
    .await;

    let (history, authed) = history_client(&config, &running).await;
    let timeline = timeline_when(
        &history,
        &authed,
        v1::CustomerIdentifier {
            kind: v1::customer_identifier::Kind::Email as i32,
            value: "Lucia@Example.test".into(),
        },
        "the email in Lucia's timeline",
        // The message and the acknowledgement (with its sent status) are in.
        |t| {
            t.interactions.first().is_some_and(|i| {
                i.messages.len() == 2
                    && i.messages.iter().any(|m| {
                        m.direction == v1::Direction::Outbound as i32 && m.status == "sent"
                    })
            })
        },
    )
    .await;
    let interaction = &timeline.interactions[0];
    assert_eq!(interaction.channel, v1::Channel::Email as i32);
    assert_eq!(interaction.subject, "Contratto");
    assert!(
        interaction
            .messages
            .iter()
            .any(|m| m.body.contains("Vorrei disdire"))
    );
    eventually(
        Duration::from_secs(30),
        "the acknowledgement sent",
        || async { (smtp.messages().len() == 1).then_some(()) },
    )
    .await;
    let _ = stop.send(());
    let _ = running.task.await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Appends `raw` to `user`'s INBOX on a Dovecot, as mail arriving.
pub async fn append(port: u16, user: &str, raw: &str) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("IMAP");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("greeting");
    let mut imap = client
        .login(user, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .expect("login");
    imap.append("INBOX", None, None, raw).await.expect("APPEND");
    let _ = imap.logout().await;
}

pub struct Bearer(pub String);

impl Bearer {
    pub fn wrap<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.0).parse().expect("header"),
        );
        r
    }
}

/// A history client of a running `up`, with an agent's token.
pub async fn history_client(
    config: &centralino::Config,
    running: &centralino::Running,
) -> (HistoryServiceClient<tonic::transport::Channel>, Bearer) {
    let key = centralino::token_key(config).expect("key");
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("fits");
    let token = key
        .mint("up-test", centralino_auth::Role::Agent, now, 600)
        .expect("token");
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.grpc_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    (HistoryServiceClient::new(channel), Bearer(token))
}

/// The timeline (messages included) of the customer `identifier` names, once
/// `ready` says it is complete; fails the test after 30 s.
pub async fn timeline_when(
    history: &HistoryServiceClient<tonic::transport::Channel>,
    authed: &Bearer,
    identifier: v1::CustomerIdentifier,
    what: &str,
    ready: impl Fn(&v1::ListTimelineResponse) -> bool,
) -> v1::ListTimelineResponse {
    eventually(Duration::from_secs(30), what, || {
        let mut history = history.clone();
        let find = authed.wrap(v1::FindCustomersRequest {
            identifier: Some(identifier.clone()),
            ..Default::default()
        });
        let ready = &ready;
        async move {
            let customer = history
                .find_customers(find)
                .await
                .ok()?
                .into_inner()
                .customers
                .into_iter()
                .next()?;
            let timeline = history
                .list_timeline(authed.wrap(v1::ListTimelineRequest {
                    customer_id: customer.id,
                    include_messages: true,
                    ..Default::default()
                }))
                .await
                .ok()?
                .into_inner();
            ready(&timeline).then_some(timeline)
        }
    })
    .await
}
