use std::time::Duration;

use centralino_email::AckTemplate;
use centralino_proto::v1;
use centralino_test_support::eventually;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

async fn one_conversation(env: &Env, subject: &str) -> String {
    eventually(WAIT, &format!("a conversation for {subject:?}"), || async {
        let threads = env.threads_by_subject();
        let ids = threads.get(subject)?;
        (ids.len() == 1)
            .then(|| ids.iter().next().cloned())
            .flatten()
    })
    .await
}

/// New mail opens one interaction in the mailbox's queue; the agent's reply
/// leaves over SMTP threaded to it; the customer's answer (by In-Reply-To, and
/// by the token alone) joins the same conversation.
async fn conversation_round_trip(mut env: Env) {
    env.start().await;
    env.deliver(
        SUPPORT,
        &mail(
            "maria@example.test",
            SUPPORT,
            "Fattura sbagliata",
            "c1@example.test",
            "",
            "La fattura non torna.",
        ),
    )
    .await;
    let interaction = one_conversation(&env, "Fattura sbagliata").await;
    let created = env.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].id, interaction);
    assert_eq!(created[0].queue_hint, "support");
    assert_eq!(created[0].identifiers[0].value, "maria@example.test");
    assert_eq!(
        created[0].conversation_id, interaction,
        "the conversation is named by a UUID, the thread's interaction id"
    );

    // The same email again (another delivery, and a copy in another mailbox) is not new.
    env.deliver(
        SUPPORT,
        &mail(
            "maria@example.test",
            SUPPORT,
            "Fattura sbagliata",
            "c1@example.test",
            "",
            "La fattura non torna.",
        ),
    )
    .await;
    env.deliver(
        BILLING,
        &mail(
            "maria@example.test",
            SUPPORT,
            "Fattura sbagliata",
            "c1@example.test",
            "",
            "La fattura non torna.",
        ),
    )
    .await;
    eventually(WAIT, "both copies flagged seen", || async {
        (env.unseen(SUPPORT).await == 0 && env.unseen(BILLING).await == 0).then_some(())
    })
    .await;
    assert_eq!(env.created().len(), 1, "a copy made no second interaction");

    let reply_id = env
        .reply(&interaction, "Gentile cliente, la correggiamo.")
        .await;
    let sent = eventually(WAIT, "the reply reaches the SMTP server", || async {
        env.smtp
            .messages()
            .into_iter()
            .find(|m| header(m, "In-Reply-To").as_deref() == Some("<c1@example.test>"))
    })
    .await;
    assert_eq!(
        header(&sent, "References").as_deref(),
        Some("<c1@example.test>")
    );
    assert!(header(&sent, "From").is_some_and(|f| f.contains(SUPPORT)));
    assert!(header(&sent, "To").is_some_and(|t| t.contains("maria@example.test")));
    let subject = header(&sent, "Subject").unwrap_or_default();
    let token = subject
        .split_once("[#CN-")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(token, _)| token.to_owned())
        .unwrap_or_else(|| panic!("the conversation's token in the subject: {subject}"));
    assert_eq!(token.len(), 10, "{subject}");
    assert!(header(&sent, "Auto-Submitted").is_none());
    let sent_rfc = header(&sent, "Message-ID").unwrap_or_default();
    eventually(WAIT, "a sent status for the reply", || async {
        env.events::<v1::MessageStatusChanged>("interaction.email.message_status")
            .into_iter()
            .find(|s| s.message_id == reply_id && s.status == "sent")
    })
    .await;

    // The customer answers the reply, then writes again quoting only the token.
    env.deliver(
        SUPPORT,
        &mail(
            "maria@example.test",
            SUPPORT,
            "Re: grazie",
            "c2@example.test",
            &format!("In-Reply-To: {sent_rfc}\r\nReferences: <c1@example.test> {sent_rfc}\r\n"),
            "Grazie!",
        ),
    )
    .await;
    env.deliver(
        SUPPORT,
        &mail(
            "maria@example.test",
            SUPPORT,
            &format!("Ancora io [#CN-{token}]"),
            "c3@example.test",
            "",
            "Una domanda.",
        ),
    )
    .await;
    assert_eq!(one_conversation(&env, "Re: grazie").await, interaction);
    assert_eq!(
        one_conversation(&env, &format!("Ancora io [#CN-{token}]")).await,
        interaction
    );
    assert_eq!(env.created().len(), 1, "follow-ups open nothing");

    // The same command again sends nothing more.
    env.send(v1::SendMessage {
        message_id: reply_id.clone(),
        interaction_id: interaction.clone(),
        channel: v1::Channel::Email as i32,
        body: "Gentile cliente, la correggiamo.".into(),
        ..Default::default()
    })
    .await;
    let unknown = env.reply(&uuid::Uuid::now_v7().to_string(), "hello?").await;
    eventually(
        WAIT,
        "a reply in no conversation is reported failed",
        || async {
            env.events::<v1::MessageStatusChanged>("interaction.email.message_status")
                .into_iter()
                .find(|s| s.message_id == unknown && s.status == "failed")
        },
    )
    .await;
    assert_eq!(
        env.smtp.messages().len(),
        1,
        "the repeated command sent nothing"
    );
    env.stop().await;
}

#[tokio::test]
async fn a_conversation_round_trip_on_postgres() {
    conversation_round_trip(Env::postgres(|_| {}).await).await;
}

#[tokio::test]
async fn a_conversation_round_trip_on_sqlite() {
    conversation_round_trip(Env::sqlite(|_| {}).await).await;
}

/// The adapter is killed while it imports a backlog; more mail arrives while
/// it is down; after a restart every message is one interaction, none twice.
#[tokio::test]
async fn a_crash_mid_batch_loses_and_duplicates_nothing() {
    let mut env = Env::postgres(|c| c.batch_size = 25).await;
    let first: Vec<Vec<u8>> = (0..400)
        .map(|i| {
            mail(
                &format!("c{i}@example.test"),
                SUPPORT,
                &format!("backlog {i}"),
                &format!("b{i}@example.test"),
                "",
                "x",
            )
        })
        .collect();
    env.deliver_many(SUPPORT, &first).await;
    env.start().await;
    eventually(WAIT, "part of the backlog imported", || async {
        (env.created().len() >= 60).then_some(())
    })
    .await;
    env.crash();
    let imported_at_crash = env.created().len();
    let more: Vec<Vec<u8>> = (400..500)
        .map(|i| {
            mail(
                &format!("c{i}@example.test"),
                SUPPORT,
                &format!("backlog {i}"),
                &format!("b{i}@example.test"),
                "",
                "x",
            )
        })
        .collect();
    env.deliver_many(SUPPORT, &more).await;
    env.start().await;
    eventually(Duration::from_secs(90), "all 500 imported", || async {
        (env.threads_by_subject().len() == 500).then_some(())
    })
    .await;
    eventually(WAIT, "all flagged seen", || async {
        (env.unseen(SUPPORT).await == 0).then_some(())
    })
    .await;
    let threads = env.threads_by_subject();
    let doubled: Vec<_> = threads.iter().filter(|(_, ids)| ids.len() != 1).collect();
    assert!(doubled.is_empty(), "messages filed twice: {doubled:?}");
    assert_eq!(env.created().len(), 500, "one interaction per email");
    assert_eq!(
        env.sql_count("SELECT count(*) FROM email_messages WHERE direction = 'inbound'")
            .await,
        500
    );
    assert!(
        imported_at_crash < 500,
        "the crash came mid-backlog ({imported_at_crash})"
    );
    env.stop().await;
}

/// Dovecot restarts under the adapter: it reconnects and carries on.
#[tokio::test]
async fn an_imap_server_restart_is_survived() {
    let mut env = Env::postgres(|_| {}).await;
    env.start().await;
    let batch = |from: usize| -> Vec<Vec<u8>> {
        (from..from + 20)
            .map(|i| {
                mail(
                    "r@example.test",
                    SUPPORT,
                    &format!("restart {i}"),
                    &format!("r{i}@example.test"),
                    "",
                    "x",
                )
            })
            .collect()
    };
    env.deliver_many(SUPPORT, &batch(0)).await;
    eventually(WAIT, "the first 20", || async {
        (env.threads_by_subject().len() == 20).then_some(())
    })
    .await;
    env.dovecot.restart();
    env.deliver_many(SUPPORT, &batch(20)).await;
    eventually(
        Duration::from_secs(60),
        "the next 20 after the restart",
        || async { (env.threads_by_subject().len() == 40).then_some(()) },
    )
    .await;
    assert!(env.threads_by_subject().values().all(|ids| ids.len() == 1));
    assert_eq!(env.created().len(), 40);
    env.stop().await;
}

/// However long the IMAP server was away, mail is imported again within
/// 10 s of its return: the wait between reconnects stops growing at 5 s
/// (it grew to 60 s, and a 90 s outage was recovered 40 s late).
#[tokio::test]
async fn after_a_long_imap_outage_mail_flows_within_10_s_of_the_return() {
    let mut env = Env::postgres(|_| {}).await;
    env.start().await;
    let one = |i: usize| {
        mail(
            "o@example.test",
            SUPPORT,
            &format!("outage {i}"),
            &format!("o{i}@example.test"),
            "",
            "x",
        )
    };
    env.deliver(SUPPORT, &one(0)).await;
    eventually(WAIT, "the first message", || async {
        (env.threads_by_subject().len() == 1).then_some(())
    })
    .await;
    // A short outage, then a long one: long enough for a doubling wait to pass 15 s.
    for (round, outage) in [(1, 2), (2, 16)] {
        env.dovecot.stop();
        tokio::time::sleep(Duration::from_secs(outage)).await;
        env.dovecot.start_again();
        let back = std::time::Instant::now();
        env.deliver(SUPPORT, &one(round)).await;
        eventually(WAIT, "the message sent after the return", || async {
            (env.threads_by_subject().len() == round + 1).then_some(())
        })
        .await;
        let took = back.elapsed();
        println!("imap: {outage} s outage: mail imported {took:?} after the server's return");
        assert!(
            took < Duration::from_secs(10),
            "mail flowed {took:?} after the server came back from a {outage} s outage"
        );
    }
    env.stop().await;
}

/// Only a person's new mail gets the acknowledgement; auto-replies, lists,
/// bounces and our own mail coming back never do, and a bounce marks the
/// message it reports on as failed.
#[tokio::test]
async fn auto_replies_and_bounces_make_no_loop() {
    let mut env = Env::postgres(|c| {
        c.ack = Some(AckTemplate {
            subject: "Ricevuto: {subject}".into(),
            body: "Abbiamo ricevuto la sua richiesta {token}.".into(),
        })
    })
    .await;
    env.start().await;
    env.deliver(
        SUPPORT,
        &mail(
            "anna@example.test",
            SUPPORT,
            "Aiuto",
            "p1@example.test",
            "",
            "help",
        ),
    )
    .await;
    let ack = eventually(WAIT, "the acknowledgement", || async {
        env.smtp.messages().into_iter().next()
    })
    .await;
    assert_eq!(
        header(&ack, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        header(&ack, "In-Reply-To").as_deref(),
        Some("<p1@example.test>")
    );
    let ack_rfc = header(&ack, "Message-ID").unwrap_or_default();

    let automatic = [
        ("Auto-Submitted: auto-replied\r\n", "out of office"),
        ("Precedence: bulk\r\n", "newsletter"),
        ("X-Auto-Response-Suppress: All\r\n", "suppressed"),
        ("Return-Path: <>\r\n", "notification"),
    ];
    for (i, (extra, subject)) in automatic.iter().enumerate() {
        env.deliver(
            SUPPORT,
            &mail(
                "robot@example.test",
                SUPPORT,
                subject,
                &format!("a{i}@example.test"),
                extra,
                "auto",
            ),
        )
        .await;
    }
    // Our own acknowledgement delivered back to us (a misconfigured forward).
    env.deliver(SUPPORT, &ack).await;
    // The customer's server bounces the acknowledgement.
    let bounce = format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.test\r\nTo: {SUPPORT}\r\nSubject: Undelivered\r\n\
         Message-ID: <dsn1@mx.example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n\
         --R\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\
         --R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n\
         --R\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {SUPPORT}\r\nMessage-ID: {ack_rfc}\r\n\r\n--R--\r\n"
    );
    env.deliver(SUPPORT, bounce.as_bytes()).await;
    // A bounce for a message sent by someone else (not from Centralino).
    let stranger = bounce
        .replace(&ack_rfc, "<elsewhere-1@other.test>")
        .replace("<dsn1@", "<dsn2@");
    env.deliver(SUPPORT, stranger.as_bytes()).await;
    let failed = eventually(
        WAIT,
        "the bounce marks the acknowledgement failed",
        || async {
            env.events::<v1::MessageStatusChanged>("interaction.email.message_status")
                .into_iter()
                .find(|s| s.status == "failed")
        },
    )
    .await;
    assert_eq!(failed.error, "bounced (5.2.2)");
    eventually(WAIT, "everything imported and flagged", || async {
        (env.unseen(SUPPORT).await == 0).then_some(())
    })
    .await;
    // Every import is committed (acknowledgements are rows written with
    // them): one acknowledgement was ever queued.
    assert_eq!(
        env.sql_count("SELECT count(*) FROM email_outbound WHERE kind = 'ack'")
            .await,
        1,
        "only the person is acknowledged"
    );
    // Sentinel: the sender has settled every row it had, so the SMTP server
    // holds all it will ever get.
    eventually(WAIT, "nothing left to send", || async {
        (env.sql_count("SELECT count(*) FROM email_outbound WHERE status = 'queued'")
            .await
            == 0)
            .then_some(())
    })
    .await;
    assert_eq!(
        env.smtp.messages().len(),
        1,
        "only the person got an acknowledgement"
    );
    // The person's mail and the four automatic ones are conversations (none
    // acknowledged); the bounce of our message opens nothing; the bounce of a
    // message we never sent is a conversation of its own, for someone to
    // see; our own mail coming back is recognised as ours and kept aside.
    let created = env.created();
    assert_eq!(created.len(), 6);
    let unknown: Vec<_> = created
        .iter()
        .filter(|i| i.attributes.get("email.bounce").map(String::as_str) == Some("unknown-message"))
        .collect();
    assert_eq!(unknown.len(), 1, "the stranger's bounce is on a timeline");
    assert_eq!(
        env.sql_count("SELECT count(*) FROM email_messages WHERE outcome = 'own'")
            .await,
        1
    );
    let acked_sent = env
        .events::<v1::MessageStatusChanged>("interaction.email.message_status")
        .into_iter()
        .filter(|s| s.message_id == failed.message_id)
        .count();
    assert!(acked_sent >= 1);
    env.stop().await;
}

/// A message that cannot be read and one above the size cap each become a
/// visible conversation with their outcome; nothing is dropped.
#[tokio::test]
async fn malformed_and_oversized_mail_get_a_clear_outcome() {
    let mut env = Env::postgres(|c| c.max_message_bytes = 64 * 1024).await;
    env.start().await;
    let garbage: &[u8] = b"\x00\x01\x02 no header at all \xff\xfe\r\n\r\n\x00";
    env.deliver(SUPPORT, garbage).await;
    let big_body = "x".repeat(100 * 1024);
    env.deliver(
        SUPPORT,
        &mail(
            "big@example.test",
            SUPPORT,
            "Allegato enorme",
            "big1@example.test",
            "",
            &big_body,
        ),
    )
    .await;
    let created = eventually(WAIT, "two conversations", || async {
        let c = env.created();
        (c.len() == 2).then_some(c)
    })
    .await;
    let malformed = created
        .iter()
        .find(|i| i.attributes.contains_key("email.malformed"))
        .expect("the unreadable one is flagged");
    assert_eq!(malformed.subject, "(unreadable message)");
    let oversized = created
        .iter()
        .find(|i| i.attributes.contains_key("email.oversized"))
        .expect("the oversized one is flagged");
    assert_eq!(oversized.subject, "Allegato enorme");
    assert!(
        oversized.attributes["email.oversized"]
            .parse::<u64>()
            .is_ok_and(|n| n > 100 * 1024)
    );
    assert_eq!(
        env.sql_count(
            "SELECT count(*) FROM email_messages WHERE outcome = 'malformed' AND raw IS NOT NULL"
        )
        .await,
        1,
        "the unreadable bytes are kept for reprocessing"
    );
    // The unreadable one is settled (seen); the big message is still on the
    // server, whole and unread, for the people who read that mailbox: only
    // its headers were imported.
    eventually(WAIT, "both messages settled by the adapter", || async {
        let settled = env
            .sql_count("SELECT count(*) FROM email_uids WHERE flagged = true")
            .await;
        (settled == 2).then_some(())
    })
    .await;
    let mut s = imap_login(env.dovecot.port(), SUPPORT).await;
    s.select("INBOX").await.expect("select");
    assert_eq!(
        s.uid_search("LARGER 102400").await.expect("search").len(),
        1
    );
    assert_eq!(
        s.uid_search("UNSEEN").await.expect("search"),
        s.uid_search("LARGER 102400").await.expect("search"),
        "the oversized message, and only it, is left unread"
    );
    let _ = s.logout().await;
    env.stop().await;
}

/// However long the SMTP server was away, a reply waiting for it leaves
/// within 10 s of its return, and the outage costs it no attempt (the wait
/// grew 5 s, 10 s, 20 s…, and a long outage used the attempts up).
#[tokio::test]
async fn after_a_long_smtp_outage_a_reply_leaves_within_10_s_of_the_return() {
    let mut env = Env::postgres(|c| c.retry_base = Duration::from_secs(5)).await;
    env.start().await;
    env.deliver(
        SUPPORT,
        &mail(
            "w@example.test",
            SUPPORT,
            "Attesa",
            "w1@example.test",
            "",
            "x",
        ),
    )
    .await;
    let conversation = one_conversation(&env, "Attesa").await;
    // A short outage, then a long one: long enough for a doubling wait to pass 15 s.
    for (round, outage) in [(1, 2), (2, 16)] {
        env.smtp.stop();
        let reply = env.reply(&conversation, &format!("Eccoci {round}")).await;
        tokio::time::sleep(Duration::from_secs(outage)).await;
        env.smtp.start_again();
        let back = std::time::Instant::now();
        eventually(WAIT, "the reply sent", || async {
            env.events::<v1::MessageStatusChanged>("interaction.email.message_status")
                .into_iter()
                .find(|s| s.message_id == reply && s.status == "sent")
        })
        .await;
        let took = back.elapsed();
        println!("smtp: {outage} s outage: reply sent {took:?} after the server's return");
        assert!(
            took < Duration::from_secs(10),
            "sent {took:?} after the server came back from a {outage} s outage"
        );
    }
    assert_eq!(env.smtp.messages().len(), 2);
    assert_eq!(
        env.sql_count("SELECT count(*) FROM email_outbound WHERE attempts = 1")
            .await,
        2,
        "only the attempt that reached the server counts"
    );
    env.stop().await;
}

/// An agent's reply that arrives while the store cannot be written (here
/// the embedded SQLite file, locked by another writer for 15 s) is held, not
/// returned to the broker until its delivery limit dead-letters it: it is
/// sent once the store answers, exactly once. The adapter's delivery limit
/// is 1 here, so a command returned to the broker would be dead-lettered
/// within about 11.5 s (two 5 s busy timeouts, and the 0.5 s and 1 s waits
/// before each return), well inside the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_waits_out_a_store_that_cannot_be_written_and_is_sent_once() {
    let mut env = Env::sqlite(|_| {}).await;
    env.delivery_limit = 1;
    env.start().await;
    env.deliver(
        SUPPORT,
        &mail(
            "l@example.test",
            SUPPORT,
            "Bloccato",
            "lock1@example.test",
            "",
            "x",
        ),
    )
    .await;
    let conversation = one_conversation(&env, "Bloccato").await;
    // Another writer takes the file's write lock and keeps it.
    let other = centralino_store::connect(&env.db.url, 1)
        .await
        .expect("a second connection");
    let lock = centralino_store::begin(&other)
        .await
        .expect("BEGIN IMMEDIATE");
    let reply = env.reply(&conversation, "Risposta col file bloccato").await;
    // The outage itself (what the test is about): longer than a returned
    // command takes to be dead-lettered at this delivery limit.
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(
        env.smtp.messages().is_empty(),
        "nothing is sent while the store cannot record it"
    );
    lock.rollback().await.expect("release the lock");
    let _ = other.close().await;
    eventually(Duration::from_secs(30), "the reply sent", || async {
        env.events::<v1::MessageStatusChanged>("interaction.email.message_status")
            .into_iter()
            .find(|s| s.message_id == reply && s.status == "sent")
    })
    .await;
    let sent = env
        .smtp
        .messages()
        .iter()
        .filter(|m| String::from_utf8_lossy(m).contains("Risposta col file bloccato"))
        .count();
    assert_eq!(sent, 1);
    // One outbound row, tried once: nothing left to send it again.
    assert_eq!(
        env.sql_count(&format!(
            "SELECT count(*) FROM email_outbound WHERE id = '{reply}' AND attempts = 1 AND status = 'sent'"
        ))
        .await,
        1
    );
    assert!(
        env.bus
            .dead_letters("email", 10)
            .await
            .expect("dead letters")
            .is_empty(),
        "the reply was not dead-lettered"
    );
    env.stop().await;
}

/// A permanent SMTP refusal reports `failed` at once; a temporary one is
/// retried until it goes through.
#[tokio::test]
async fn smtp_refusals_are_retried_or_reported() {
    let mut env = Env::postgres(|_| {}).await;
    env.start().await;
    env.deliver(
        SUPPORT,
        &mail(
            "reject-me@example.test",
            SUPPORT,
            "A",
            "f1@example.test",
            "",
            "x",
        ),
    )
    .await;
    env.deliver(
        SUPPORT,
        &mail(
            "later-me@example.test",
            SUPPORT,
            "B",
            "f2@example.test",
            "",
            "x",
        ),
    )
    .await;
    let a = one_conversation(&env, "A").await;
    let b = one_conversation(&env, "B").await;
    let to_a = env.reply(&a, "answer a").await;
    let to_b = env.reply(&b, "answer b").await;
    let status_of = |id: String| {
        let env = &env;
        async move {
            eventually(WAIT, "a final status", || async {
                env.events::<v1::MessageStatusChanged>("interaction.email.message_status")
                    .into_iter()
                    .find(|s| s.message_id == id)
            })
            .await
        }
    };
    let a_status = status_of(to_a).await;
    assert_eq!(a_status.status, "failed");
    assert!(a_status.error.contains("550"), "{}", a_status.error);
    let b_status = status_of(to_b).await;
    assert_eq!(b_status.status, "sent");
    assert_eq!(env.smtp.messages().len(), 1);
    env.stop().await;
}

/// The server renumbers the folder (a new UIDVALIDITY): the adapter rescans it,
/// recognises every message it already imported, and imports only new ones.
#[tokio::test]
async fn a_new_uidvalidity_imports_nothing_twice() {
    let mut env = Env::postgres(|_| {}).await;
    env.start().await;
    let batch = |from: usize, n: usize| -> Vec<Vec<u8>> {
        (from..from + n)
            .map(|i| {
                mail(
                    "u@example.test",
                    SUPPORT,
                    &format!("renumber {i}"),
                    &format!("u{i}@example.test"),
                    "",
                    "x",
                )
            })
            .collect()
    };
    env.deliver_many(SUPPORT, &batch(0, 10)).await;
    eventually(WAIT, "the first 10", || async {
        (env.threads_by_subject().len() == 10).then_some(())
    })
    .await;
    let before = env
        .sql_count("SELECT max(uidvalidity) FROM email_positions WHERE mailbox = 'support'")
        .await;
    env.dovecot.renumber(SUPPORT);
    env.deliver_many(SUPPORT, &batch(10, 3)).await;
    eventually(
        Duration::from_secs(60),
        "the 3 new ones after the renumbering",
        || async { (env.threads_by_subject().len() == 13).then_some(()) },
    )
    .await;
    eventually(WAIT, "the rescan recorded under the new UIDVALIDITY", || async {
        let uids = env
            .sql_count(&format!("SELECT count(*) FROM email_uids WHERE mailbox = 'support' AND uidvalidity <> {before}"))
            .await;
        (uids == 13).then_some(())
    })
    .await;
    assert_eq!(env.created().len(), 13, "nothing imported twice");
    assert_eq!(
        env.sql_count("SELECT count(*) FROM email_messages WHERE direction = 'inbound'")
            .await,
        13
    );
    env.stop().await;
}

/// With `after_import = move:<folder>`, imported mail leaves the inbox for the
/// folder, once its events are on the bus; a restart moves nothing twice.
#[tokio::test]
async fn imported_mail_can_be_moved_to_a_folder() {
    let mut env = Env::postgres(|c| {
        c.mailboxes[0].after_import = centralino_email::AfterImport::Move("Imported".into());
    })
    .await;
    env.start().await;
    let mails: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            mail(
                "m@example.test",
                SUPPORT,
                &format!("move {i}"),
                &format!("mv{i}@example.test"),
                "",
                "x",
            )
        })
        .collect();
    env.deliver_many(SUPPORT, &mails).await;
    let port = env.dovecot.port();
    let count = move |folder: &'static str| async move {
        let mut s = imap_login(port, SUPPORT).await;
        let n = s.select(folder).await.map(|m| m.exists).unwrap_or(0);
        let _ = s.logout().await;
        n
    };
    eventually(WAIT, "all five moved", || async {
        (count("INBOX").await == 0 && count("Imported").await == 5).then_some(())
    })
    .await;
    assert_eq!(env.created().len(), 5);
    env.crash();
    env.start().await;
    env.deliver(
        SUPPORT,
        &mail(
            "m@example.test",
            SUPPORT,
            "move 5",
            "mv5@example.test",
            "",
            "x",
        ),
    )
    .await;
    eventually(WAIT, "the sixth moved too", || async {
        (count("INBOX").await == 0 && count("Imported").await == 6).then_some(())
    })
    .await;
    assert_eq!(env.created().len(), 6);
    env.stop().await;
}

/// A mailbox reached over IMAPS whose certificate is signed by a private CA
/// (`tls_ca_file`): the adapter verifies it and imports.
#[tokio::test]
async fn imaps_with_a_private_ca() {
    use centralino_test_support::mail::Dovecot;
    let tls = Dovecot::start_tls(&[SUPPORT]);
    let mut env = Env::postgres(|c| {
        c.mailboxes.truncate(1);
        c.mailboxes[0].imap.port = tls.port();
        c.mailboxes[0].imap.security = centralino_email::Security::Tls;
        c.mailboxes[0].imap.tls_ca_file = Some(tls.ca_file());
    })
    .await;
    env.start().await;
    tls.save(
        SUPPORT,
        &mail(
            "t@example.test",
            SUPPORT,
            "over tls",
            "tls1@example.test",
            "",
            "x",
        ),
    );
    one_conversation(&env, "over tls").await;
    env.stop().await;
}
