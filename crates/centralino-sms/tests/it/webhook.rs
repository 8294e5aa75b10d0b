//! The webhook endpoints, called the way Twilio calls them: requests signed by
//! the `twilio` Python package (`tests/python/twilio_post.py`).

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use centralino_sms::Delivered;
use centralino_sms::webhook::{WebhookConfig, router};
use tokio::sync::mpsc;

pub const TOKEN: &str = "test-auth-token-0123456789";

struct Server {
    base: String,
    received: Arc<Mutex<Vec<Delivered>>>,
    /// What the adapter answers (`handled`).
    accept: Arc<Mutex<bool>>,
}

async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, mut rx) = mpsc::channel(16);
    let app = router(
        WebhookConfig {
            public_base_url: base.clone(),
            path: "/sms/twilio".into(),
            auth_token: TOKEN.into(),
        },
        tx,
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let received = Arc::new(Mutex::new(Vec::new()));
    let accept = Arc::new(Mutex::new(true));
    let (sink, answer) = (received.clone(), accept.clone());
    tokio::spawn(async move {
        while let Some(incoming) = rx.recv().await {
            let ok = *answer.lock().expect("accept");
            if ok {
                sink.lock().expect("received").push(incoming.what);
            }
            let _ = incoming.handled.send(ok);
        }
    });
    Server {
        base,
        received,
        accept,
    }
}

/// Runs the Python client; returns the status code and body.
pub async fn post(url: String, extra: &[&str], params: &[&str]) -> (u16, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/twilio_post.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(url).arg(TOKEN).args(extra).args(params);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "twilio_post.py failed: {}\n(if a module is missing: python3 -m pip install -r tests/python/requirements.txt)",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, body) = stdout.split_once('\n').unwrap_or((stdout.as_str(), ""));
    (code.trim().parse().expect("a status code"), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_are_taken_and_forged_ones_refused() {
    let s = server().await;
    let inbound = format!("{}/sms/twilio/inbound", s.base);
    let message = [
        "MessageSid=SM0001",
        "AccountSid=AC1",
        "From=+393331234567",
        "To=+390212345678",
        "Body=Ciao, è STOP?",
        "NumMedia=0",
        "NumSegments=1",
        "SmsStatus=received",
    ];
    let (code, body) = post(inbound.clone(), &[], &message).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<Response>"));
    assert_eq!(
        s.received.lock().expect("received").clone(),
        vec![Delivered::Message {
            id: Some("SM0001".into()),
            from: "+393331234567".into(),
            to: "+390212345678".into(),
            text: "Ciao, è STOP?".into(),
        }]
    );

    // Forged: another token, a changed parameter, no signature, another URL.
    assert_eq!(
        post(inbound.clone(), &["--sign-with", "wrong-token"], &message)
            .await
            .0,
        403
    );
    assert_eq!(post(inbound.clone(), &["--tamper"], &message).await.0, 403);
    assert_eq!(
        post(format!("{}/sms/twilio/status", s.base), &[], &message)
            .await
            .0,
        400,
        "signed for /status but not a status callback"
    );
    assert_eq!(
        s.received.lock().expect("received").len(),
        1,
        "nothing forged got through"
    );

    // A status callback.
    let (code, _) = post(
        format!("{}/sms/twilio/status", s.base),
        &[],
        &[
            "MessageSid=SM0002",
            "MessageStatus=undelivered",
            "ErrorCode=30003",
        ],
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        s.received.lock().expect("received").last().cloned(),
        Some(Delivered::Status {
            id: "SM0002".into(),
            status: "failed".into(),
            error: "30003".into(),
        })
    );

    // Signed but incomplete; and an adapter that cannot store it now.
    assert_eq!(
        post(inbound.clone(), &[], &["MessageSid=SM3", "Body=x"])
            .await
            .0,
        400
    );
    *s.accept.lock().expect("accept") = false;
    assert_eq!(
        post(inbound, &[], &message).await.0,
        503,
        "the provider will retry"
    );
}
