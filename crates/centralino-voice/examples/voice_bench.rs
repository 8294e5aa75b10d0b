//! Voice load benchmark: sipp places many concurrent calls through the IVR
//! (answer, prompt, an RFC 4733 key, the queue's hold audio, the caller's
//! BYE), beside the same load against sipp's own UAS (SIP alone, no media,
//! no IVR, no database) measured in the same run.
//!
//! `cargo run --release -p centralino-voice --example voice_bench -- [concurrent] [total] [rate] [hold_s]`
//! (defaults 120, 900, 40, 4). Needs sipp, RabbitMQ and PostgreSQL (as for
//! the tests).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use centralino_bus::{AmqpBus, AmqpConfig, Bus, ConsumerSpec, Exchange, Topology};
use centralino_telephony::ivr::{Action, Flow, Menu};
use centralino_test_support::voice::{
    CallerScript, Ending, Sipp, SippOutcome, SippUas, Step, sipp_caller_scenario,
};
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use centralino_voice::{NumberConfig, VoiceConfig};

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn flow() -> Flow {
    let root = Menu {
        prompt: vec!["menu/welcome".into(), "menu/options".into()],
        options: BTreeMap::from([(
            '1',
            Action::Queue {
                queue: "sales".into(),
                priority: 0,
            },
        )]),
        timeout_ms: 10_000,
        retries: 1,
        invalid_prompt: vec!["menu/invalid".into()],
        no_input_prompt: vec!["menu/no-input".into()],
        default: Action::Queue {
            queue: "support".into(),
            priority: 0,
        },
    };
    Flow {
        start: "root".into(),
        menus: BTreeMap::from([("root".into(), root)]),
        goodbye: vec!["menu/goodbye".into()],
    }
}

/// One sipp run; returns the outcome, the wall time and the highest number of
/// calls up at once that the adapter saw (0 for the baseline).
async fn run(
    target: SocketAddr,
    xml: &str,
    concurrent: u64,
    total: u64,
    rate: u64,
    active: Option<Arc<std::sync::atomic::AtomicUsize>>,
) -> (SippOutcome, Duration, usize) {
    let (c, t, r) = (concurrent.to_string(), total.to_string(), rate.to_string());
    let started = Instant::now();
    let sipp = Sipp::spawn(
        xml,
        target,
        &["-m", &t, "-l", &c, "-r", &r, "-rtp_threadtasks", "40"],
        Duration::from_secs(600),
    );
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watcher = active.map(|active| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let now = active.load(std::sync::atomic::Ordering::Relaxed);
                peak.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let outcome = sipp.finish().await;
    if let Some(w) = watcher {
        w.abort();
    }
    (
        outcome,
        started.elapsed(),
        peak.load(std::sync::atomic::Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() {
    let concurrent = arg(1, 120);
    let total = arg(2, 900);
    let rate = arg(3, 40);
    let hold_s = arg(4, 4);
    let script = CallerScript::new("100", "+393471234567")
        .steps([
            Step::Pause(300),
            Step::Rfc4733("1".into()),
            Step::Pause(hold_s * 1000),
        ])
        .ending(Ending::Bye);
    let xml = sipp_caller_scenario(&script);
    println!(
        "voice_bench: {total} calls, at most {concurrent} at once, {rate} new calls/s, each: IVR prompt, key 1 (RFC 4733), {hold_s} s on hold, BYE"
    );

    println!("baseline: sipp's own UAS (SIP only) ...");
    let uas = SippUas::start();
    let l0 = load();
    let (raw, raw_time, _) = run(uas.addr(), &xml, concurrent, total, rate, None).await;
    let l1 = load();
    drop(uas);

    println!("ours: the voice adapter (PostgreSQL, RabbitMQ, IVR, RTP) ...");
    let db = TestDatabase::postgres().await;
    let prefix = bus_prefix("vo");
    let mut amqp = AmqpConfig::new(amqp_url());
    amqp.topology = Topology::new(prefix.clone());
    amqp.connection_name = "voice-bench".into();
    let bus: Arc<dyn Bus> = Arc::new(AmqpBus::connect(amqp).await.expect("RabbitMQ"));
    // Someone must take the interactions (routing's queue stands in).
    let mut sink = bus
        .subscribe(ConsumerSpec::new("bench-routing").bind(Exchange::Events, "interaction.voice.#"))
        .await
        .expect("subscribe");
    let drain = tokio::spawn(async move {
        let mut n = 0u64;
        while let Some(d) = sink.next().await {
            n += 1;
            let _ = d.ack().await;
        }
        n
    });
    let conn = centralino_store::connect(&db.url, 16)
        .await
        .expect("database");
    centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
        .await
        .expect("core migrations");
    centralino_store::migrate::<centralino_voice::VoiceMigrator>(&conn, |_| {})
        .await
        .expect("voice migrations");
    let config = VoiceConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        prompts_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prompts"),
        numbers: vec![NumberConfig {
            number: "100".into(),
            flow: "main".into(),
        }],
        flows: BTreeMap::from([("main".into(), flow())]),
        max_calls: 2_000,
        ..VoiceConfig::default()
    };
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let voice = centralino_voice::start(config, conn, bus.clone(), async move {
        let _ = stop_rx.await;
    })
    .await
    .expect("voice adapter starts");
    let l2 = load();
    let (ours, ours_time, peak) = run(
        voice.sip_addr,
        &xml,
        concurrent,
        total,
        rate,
        Some(voice.active.clone()),
    )
    .await;
    let l3 = load();
    let _ = stop.send(());
    let _ = voice.task.await;
    drain.abort();

    let cps = |o: &SippOutcome, d: Duration| o.successful as f64 / d.as_secs_f64();
    println!();
    println!(
        "| run | calls ok | failed | wall | calls/s | peak concurrent | load (1/5/15) before → after |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| raw (sipp UAS) | {} | {} | {:.1} s | {:.1} | – | {l0} → {l1} |",
        raw.successful,
        raw.failed,
        raw_time.as_secs_f64(),
        cps(&raw, raw_time)
    );
    println!(
        "| ours (voice adapter) | {} | {} | {:.1} s | {:.1} | {peak} | {l2} → {l3} |",
        ours.successful,
        ours.failed,
        ours_time.as_secs_f64(),
        cps(&ours, ours_time)
    );
    println!(
        "ratio (ours / raw calls/s): {:.2}",
        cps(&ours, ours_time) / cps(&raw, raw_time).max(f64::MIN_POSITIVE)
    );
    if ours.failed > 0 || !ours.success {
        println!(
            "\nour run's sipp errors:\n{}",
            ours.errors_log
                .lines()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let (queues, exchanges) =
        centralino_test_support::rabbitmq_shared_objects(&prefix, &["voice", "bench-routing"]);
    centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
    db.drop_db().await;
}
