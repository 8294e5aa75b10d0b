use std::time::Duration;

use centralino_gsm::Encoding;
use centralino_sms::smpp::{SendError, Smpp, SmppConfig};
use centralino_sms::{Delivered, Incoming};
use centralino_test_support::mail::Smsc;
use tokio::sync::{mpsc, watch};

const WAIT: Duration = Duration::from_secs(20);

fn config(port: u16) -> SmppConfig {
    SmppConfig {
        port,
        system_id: "centralino".into(),
        password: "secret".into(),
        source_addr: "4321".into(),
        enquire_link: Duration::from_secs(1),
        response_timeout: Duration::from_secs(5),
        ..SmppConfig::default()
    }
}

async fn bound(smpp: &Smpp) {
    let mut b = smpp.bound();
    tokio::time::timeout(WAIT, b.wait_for(|b| *b))
        .await
        .expect("bound within 20 s")
        .expect("transport running");
}

fn submitted(smsc: &Smsc) -> Vec<serde_json::Value> {
    serde_json::from_str(&smsc.submitted()).expect("JSON from the simulator")
}

async fn next(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("something delivered within 20 s")
        .expect("transport running")
}

/// Every field of a `submit_sm` we send, checked against SMPP 3.4 §4.4.1 and
/// §5.2: a normal message is `esm_class` 0x00 (0x40 with a UDH), never
/// 0x08 ("ESME delivery acknowledgement", rusmpp-core 0.4's default).
#[tokio::test]
async fn every_submit_sm_field_is_a_normal_message_by_the_spec() {
    let smsc = Smsc::start();
    let (tx, _rx) = mpsc::channel(16);
    let (_stop, stop) = watch::channel(false);
    let (smpp, _task) = Smpp::start(config(smsc.port()), tx, stop);
    bound(&smpp).await;

    smpp.send("+393331234567", "Ciao").await.expect("submitted");
    smpp.send_from(Some("ACME"), "3331234567", &"b".repeat(200))
        .await
        .expect("submitted");
    let parts = submitted(&smsc);
    assert_eq!(parts.len(), 3, "one single part, then two parts");
    let common = |p: &serde_json::Value| {
        // service_type NULL: the SMSC's default service.
        assert_eq!(p["service_type"], "", "service_type");
        assert_eq!(p["protocol_id"], 0, "protocol_id");
        assert_eq!(p["priority_flag"], 0, "priority_flag: normal");
        assert_eq!(p["schedule_delivery_time"], "", "immediate delivery");
        assert_eq!(p["validity_period"], "", "the SMSC's default validity");
        assert_eq!(p["replace_if_present_flag"], 0, "do not replace");
        assert_eq!(p["sm_default_msg_id"], 0, "no canned message");
        assert_eq!(p["registered_delivery"], 1, "final receipt only");
        assert_eq!(p["data_coding"], 0, "SMSC default alphabet (GSM 03.38)");
    };
    let single = &parts[0];
    common(single);
    assert_eq!(single["esm_class"], 0x00, "a normal message, whole byte");
    assert_eq!(single["udh"], serde_json::json!([]));
    assert_eq!(
        (
            single["source"].as_str(),
            &single["source_ton"],
            &single["source_npi"]
        ),
        (Some("4321"), &serde_json::json!(0), &serde_json::json!(0)),
        "a short code: TON/NPI unknown"
    );
    assert_eq!(
        (
            single["destination"].as_str(),
            &single["destination_ton"],
            &single["destination_npi"]
        ),
        (
            Some("393331234567"),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "E.164: international, ISDN"
    );
    for p in &parts[1..] {
        common(p);
        assert_eq!(
            p["esm_class"], 0x40,
            "a normal message with a UDH, whole byte"
        );
        assert_eq!(
            (p["source"].as_str(), &p["source_ton"], &p["source_npi"]),
            (Some("ACME"), &serde_json::json!(5), &serde_json::json!(0)),
            "alphanumeric sender"
        );
        assert_eq!(
            (&p["destination_ton"], &p["destination_npi"]),
            (&serde_json::json!(0), &serde_json::json!(0)),
            "a national number is left to the SMSC"
        );
    }
}

/// A long GSM message leaves as concatenated parts the SMSC reads back exactly;
/// a UCS-2 one too; each part's receipt comes back with its id.
#[tokio::test]
async fn segments_reach_the_smsc_exactly_and_receipts_come_back() {
    let smsc = Smsc::start();
    let (tx, mut rx) = mpsc::channel(16);
    let (_stop, stop) = watch::channel(false);
    let (smpp, _task) = Smpp::start(config(smsc.port()), tx, stop);
    bound(&smpp).await;

    let text = format!("{} costa 10€ [ok]", "a".repeat(150));
    let sent = smpp.send("+393331234567", &text).await.expect("submitted");
    assert_eq!(sent.encoding, Encoding::Gsm7);
    assert_eq!(
        sent.part_ids.len(),
        2,
        "150 + 17 septets (€ [ ] count twice) = 2 parts"
    );
    let parts = submitted(&smsc);
    assert_eq!(parts.len(), 2);
    // The simulator lists the header's element: IEI 0, length 3, reference, total, number.
    let reference = parts[0]["udh"][2].clone();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["data_coding"], 0);
        assert_eq!(p["esm_class"], 0x40, "a normal message with a UDH");
        assert_eq!(p["udh"], serde_json::json!([0, 3, reference, 2, i + 1]));
        assert_eq!(p["destination"], "393331234567");
    }
    let rebuilt: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
    assert_eq!(
        rebuilt, text,
        "the SMSC's own GSM decoder reads the same text"
    );

    let mut receipts = Vec::new();
    while receipts.len() < 2 {
        let got = next(&mut rx).await;
        if let Delivered::Receipt(r) = &got.what {
            receipts.push(r.clone());
        }
        let _ = got.handled.send(true);
    }
    let mut ids: Vec<String> = receipts.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    let mut expected = sent.part_ids.clone();
    expected.sort();
    assert_eq!(ids, expected);
    assert!(receipts.iter().all(|r| r.status() == "delivered"));

    let sent = smpp
        .send("393331234567", &"ж".repeat(71))
        .await
        .expect("submitted");
    assert_eq!((sent.encoding, sent.part_ids.len()), (Encoding::Ucs2, 2));
    let parts = submitted(&smsc);
    let ucs: Vec<_> = parts.iter().skip(2).collect();
    assert!(ucs.iter().all(|p| p["data_coding"] == 8));
    assert_eq!(
        ucs.iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<String>(),
        "ж".repeat(71)
    );
}

/// A customer's message reaches us; an undeliverable destination's receipt
/// says failed; a refused address is refused, not retried.
#[tokio::test]
async fn inbound_messages_and_failed_receipts() {
    let smsc = Smsc::start();
    let (tx, mut rx) = mpsc::channel(16);
    let (_stop, stop) = watch::channel(false);
    let (smpp, _task) = Smpp::start(config(smsc.port()), tx, stop);
    bound(&smpp).await;
    assert!(smsc.mobile_originated("393331112222", "4321", "Ciao, è arrivato il pacco?"));
    let got = next(&mut rx).await;
    assert_eq!(
        got.what,
        Delivered::Message {
            id: None,
            from: "+393331112222".into(),
            to: "4321".into(),
            text: "Ciao, è arrivato il pacco?".into(),
        }
    );
    let _ = got.handled.send(true);

    smpp.send("390001234", "prova").await.expect("submitted");
    let failed = loop {
        let got = next(&mut rx).await;
        let _ = got.handled.send(true);
        if let Delivered::Receipt(r) = got.what {
            break r;
        }
    };
    assert_eq!((failed.status(), failed.err.as_str()), ("failed", "001"));

    let refused = smpp.send("not a number at all, far too long", "x").await;
    assert!(matches!(refused, Err(SendError::Refused(_))), "{refused:?}");
}

/// The SMSC goes away and comes back: the transport binds again by itself and
/// sends what is asked after that.
#[tokio::test]
async fn the_bind_comes_back_after_an_smsc_restart() {
    let mut smsc = Smsc::start();
    let (tx, _rx) = mpsc::channel(16);
    let (_stop, stop) = watch::channel(false);
    let (smpp, _task) = Smpp::start(config(smsc.port()), tx, stop);
    bound(&smpp).await;
    smsc.restart();
    send_again(&smpp, "di nuovo").await;
    assert_eq!(submitted(&smsc).len(), 1);
    // An orderly unbind from the SMSC: answered, and the bind is made again.
    let mut b = smpp.bound();
    assert!(smsc.unbind());
    tokio::time::timeout(WAIT, b.wait_for(|b| !*b))
        .await
        .expect("the unbind is noticed")
        .expect("transport running");
    send_again(&smpp, "dopo l'unbind").await;
    assert_eq!(submitted(&smsc).len(), 2);
}

/// However long the SMSC was away, the bind is back within 10 s of its
/// return: the wait between binds stops growing at 5 s (it grew to 30 s).
#[tokio::test]
async fn after_a_long_smsc_outage_the_bind_is_back_within_10_s() {
    let mut smsc = Smsc::start();
    let (tx, _rx) = mpsc::channel(16);
    let (_stop, stop) = watch::channel(false);
    let (smpp, _task) = Smpp::start(config(smsc.port()), tx, stop);
    bound(&smpp).await;
    let mut b = smpp.bound();
    // A short outage, then a long one: long enough for a doubling wait to pass 15 s.
    for outage in [2, 16] {
        smsc.kill();
        tokio::time::timeout(WAIT, b.wait_for(|b| !*b))
            .await
            .expect("the outage is noticed")
            .expect("transport running");
        tokio::time::sleep(Duration::from_secs(outage)).await;
        smsc.resume();
        let back = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), b.wait_for(|b| *b))
            .await
            .expect("bound again within 10 s of the SMSC's return")
            .expect("transport running");
        println!(
            "smpp: {outage} s outage: bound {:?} after the SMSC's return",
            back.elapsed()
        );
        send_again(&smpp, "dopo il guasto").await;
    }
}

/// Until the transport notices and binds again, sends are refused as
/// temporary; then they go through.
async fn send_again(smpp: &Smpp, text: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match smpp.send("393330000000", text).await {
            Ok(_) => break,
            Err(SendError::Unavailable(_) | SendError::Unreachable(_))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("not sent after the SMSC came back: {e}"),
        }
    }
}

/// A long customer message arrives in parts, out of order: it is handed over
/// once, whole, in part order.
#[tokio::test]
async fn concatenated_inbound_parts_are_reassembled() {
    let smsc = Smsc::start();
    let (tx, mut rx) = mpsc::channel(16);
    let (_stop, stop) = watch::channel(false);
    let (smpp, _task) = Smpp::start(config(smsc.port()), tx, stop);
    bound(&smpp).await;
    assert!(smsc.mobile_originated_parts(
        "393331112222",
        "4321",
        &[(2, "seconda parte."), (1, "Prima parte, ")]
    ));
    let got = next(&mut rx).await;
    assert_eq!(
        got.what,
        Delivered::Message {
            id: None,
            from: "+393331112222".into(),
            to: "4321".into(),
            text: "Prima parte, seconda parte.".into(),
        }
    );
    let _ = got.handled.send(true);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "handed over once"
    );
}

/// A part that never comes: after `parts_timeout` the message is handed over
/// with what arrived, so the SMSC gets its answers.
#[tokio::test]
async fn a_message_missing_a_part_is_handed_over_after_the_timeout() {
    let smsc = Smsc::start();
    let (tx, mut rx) = mpsc::channel(16);
    let (_stop, stop) = watch::channel(false);
    let mut cfg = config(smsc.port());
    cfg.parts_timeout = Duration::from_secs(2);
    let (smpp, _task) = Smpp::start(cfg, tx, stop);
    bound(&smpp).await;
    assert!(smsc.mobile_originated_parts_of(
        "393331112222",
        "4321",
        3,
        &[(1, "Uno, "), (3, " tre.")]
    ));
    let got = next(&mut rx).await;
    assert_eq!(
        got.what,
        Delivered::Message {
            id: None,
            from: "+393331112222".into(),
            to: "4321".into(),
            text: "Uno, … tre.".into(),
        }
    );
    let _ = got.handled.send(true);
}

/// `max_per_second` spaces the parts: 10 parts at 5 per second take about 2 s.
#[tokio::test]
async fn submits_keep_to_the_accounts_throughput() {
    let smsc = Smsc::start();
    let (tx, _rx) = mpsc::channel(64);
    let (_stop, stop) = watch::channel(false);
    let mut cfg = config(smsc.port());
    cfg.max_per_second = 5;
    let (smpp, _task) = Smpp::start(cfg, tx, stop);
    bound(&smpp).await;
    let started = std::time::Instant::now();
    let sends: Vec<_> = (0..10)
        .map(|i| {
            let smpp = smpp.clone();
            tokio::spawn(async move { smpp.send("393331234567", &format!("n. {i}")).await })
        })
        .collect();
    for s in sends {
        s.await.expect("join").expect("submitted");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1_700),
        "10 parts at 5/s took only {took:?}"
    );
    assert_eq!(submitted(&smsc).len(), 10);
}

/// SMSCs that carry the text in `message_payload` and the receipt in TLVs
/// (`receipted_message_id`, `message_state`) are read too.
#[tokio::test]
async fn texts_and_receipts_in_tlvs_are_read() {
    let smsc = Smsc::start();
    let (tx, mut rx) = mpsc::channel(16);
    let (_stop, stop) = watch::channel(false);
    let (smpp, _task) = Smpp::start(config(smsc.port()), tx, stop);
    bound(&smpp).await;
    assert!(smsc.mobile_originated_payload("393331112222", "4321", "Testo nel TLV"));
    let got = next(&mut rx).await;
    assert_eq!(
        got.what,
        Delivered::Message {
            id: None,
            from: "+393331112222".into(),
            to: "4321".into(),
            text: "Testo nel TLV".into(),
        }
    );
    let _ = got.handled.send(true);
    let sent = smpp
        .send("+391112223334", "prova")
        .await
        .expect("submitted");
    let receipt = loop {
        let got = next(&mut rx).await;
        let _ = got.handled.send(true);
        if let Delivered::Receipt(r) = got.what {
            break r;
        }
    };
    assert_eq!(receipt.id, sent.part_ids[0]);
    assert_eq!(receipt.status(), "delivered");
}
