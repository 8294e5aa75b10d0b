//! `centralino up` with the SMS adapter in the embedded mode (in-process bus,
//! SQLite): a customer's SMS through a real SMSC simulator lands in their
//! history timeline, and their STOP in their consent ledger.

use std::time::Duration;

use centralino_proto::v1;
use centralino_test_support::eventually;
use centralino_test_support::mail::Smsc;

use crate::email::{history_client, timeline_when};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_takes_sms_into_history_and_stop_into_the_ledger() {
    let smsc = Smsc::start();
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-up-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [sms]\nnumbers = [{{ number = \"4321\", queue = \"sms\" }}]\n\
             [sms.smpp]\nhost = \"127.0.0.1\"\nport = {port}\nsystem_id = \"centralino\"\npassword = \"secret\"\n",
            data = dir.display().to_string(),
            port = smsc.port(),
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (running, stop) = crate::start_up(&config).await;
    eventually(Duration::from_secs(30), "the adapter bound", || async {
        smsc.mobile_originated("393331234567", "4321", "Il pacco non è arrivato")
            .then_some(())
    })
    .await;

    let (history, authed) = history_client(&config, &running).await;
    let phone = || {
        Some(v1::CustomerIdentifier {
            kind: v1::customer_identifier::Kind::Phone as i32,
            value: "333 123 4567".into(),
        })
    };
    let timeline = timeline_when(
        &history,
        &authed,
        phone().expect("an identifier"),
        "the SMS in the customer's timeline",
        |t| {
            t.interactions
                .first()
                .is_some_and(|i| !i.messages.is_empty())
        },
    )
    .await;
    let interaction = &timeline.interactions[0];
    assert_eq!(interaction.channel, v1::Channel::Sms as i32);
    assert_eq!(interaction.messages[0].body, "Il pacco non è arrivato");

    assert!(smsc.mobile_originated("393331234567", "4321", "STOP"));
    eventually(Duration::from_secs(30), "the opt-out in the ledger", || {
        let mut history = history.clone();
        let get = authed.wrap(v1::GetConsentRequest {
            identifier: phone(),
            channel: v1::Channel::Sms as i32,
            ..Default::default()
        });
        async move {
            let consent = history.get_consent(get).await.ok()?.into_inner();
            consent
                .current
                .iter()
                .any(|c| c.state == v1::ConsentState::Revoked as i32 && c.source == "sms-keyword")
                .then_some(())
        }
    })
    .await;
    let _ = stop.send(());
    let _ = running.task.await;
    let _ = std::fs::remove_dir_all(dir);
}
