//! Routing simulator: drives the engine with Poisson arrivals and exponential
//! handle times and prints the probability of waiting and the average speed of
//! answer beside Erlang C and beside a raw first-come-first-served M/M/c
//! simulation fed the same random numbers (the baseline: what the numbers
//! would be with no routing engine at all).
//!
//! `cargo run --release -p centralino-routing --example simulate -- [calls] [runs] [erlangs] [agents] [aht_s]`
//! (defaults: 1000000 10 48 55 240). Run `r` uses seed `r + 1`.

use std::time::Instant;

use centralino_routing::sim::{erlang_c, simulate, simulate_fifo};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |n: usize, default: f64| -> f64 {
        args.get(n)
            .map(|s| {
                s.parse().unwrap_or_else(|_| {
                    eprintln!("argument {} ({s}) is not a number", n + 1);
                    std::process::exit(64)
                })
            })
            .unwrap_or(default)
    };
    let calls = arg(0, 1_000_000.0) as u64;
    let runs = (arg(1, 10.0) as u64).max(1);
    let offered = arg(2, 48.0);
    let agents = arg(3, 55.0) as u32;
    let aht = arg(4, 240.0);
    let (pw, asa) = erlang_c(offered, agents, aht);
    println!(
        "routing simulator: {runs} runs × {calls} calls, {offered} Erlang offered to {agents} agents, AHT {aht} s"
    );
    println!("Erlang C: P(wait) {:.2} %, ASA {:.2} s", pw * 100.0, asa);
    println!();
    println!(
        "run  engine P(wait)  engine ASA   vs Erlang C         raw FIFO P(wait)  raw ASA   engine vs raw   engine calls/s"
    );
    let mut sum_pw = 0.0;
    let mut sum_asa = 0.0;
    let mut max_engine_vs_raw: f64 = 0.0;
    let mut single_runs_ok = 0;
    for run in 0..runs {
        let seed = run + 1;
        let started = Instant::now();
        let r = simulate(offered, agents, aht, calls, seed, |_| {}).unwrap_or_else(|e| {
            eprintln!("simulation failed: {e}");
            std::process::exit(1)
        });
        let elapsed = started.elapsed().as_secs_f64();
        let raw = simulate_fifo(offered, agents, aht, calls, seed);
        let dpw = (r.p_wait() - pw) * 100.0;
        let dasa = (r.asa_s() / asa - 1.0) * 100.0;
        // Both zero (nobody waited) is no difference, not NaN.
        let vs_raw = if raw.asa_s() == 0.0 {
            if r.asa_s() == 0.0 { 0.0 } else { 100.0 }
        } else {
            (r.asa_s() / raw.asa_s() - 1.0) * 100.0
        };
        max_engine_vs_raw = max_engine_vs_raw.max(vs_raw.abs());
        if dpw.abs() <= 2.0 && dasa.abs() <= 5.0 {
            single_runs_ok += 1;
        }
        sum_pw += r.p_wait();
        sum_asa += r.asa_s();
        println!(
            "{:>3}  {:>12.2} %  {:>8.2} s   {:+5.2} pts {:+6.2} %  {:>14.2} %  {:>6.2} s   {:+8.3} %   {:>12.0}",
            run + 1,
            r.p_wait() * 100.0,
            r.asa_s(),
            dpw,
            dasa,
            raw.p_wait() * 100.0,
            raw.asa_s(),
            vs_raw,
            r.calls as f64 / elapsed,
        );
    }
    let mpw = sum_pw / runs as f64;
    let masa = sum_asa / runs as f64;
    println!();
    println!(
        "mean over {runs} runs: P(wait) {:.2} % ({:+.2} points), ASA {:.2} s ({:+.2} %)",
        mpw * 100.0,
        (mpw - pw) * 100.0,
        masa,
        (masa / asa - 1.0) * 100.0
    );
    println!(
        "single runs within 2 points and 5 %: {single_runs_ok} of {runs}; largest engine-vs-raw ASA difference {max_engine_vs_raw:.3} %"
    );
    let ok =
        (mpw - pw).abs() <= 0.02 && (masa / asa - 1.0).abs() <= 0.05 && max_engine_vs_raw <= 0.5;
    println!(
        "target (mean P(wait) within 2 points, ASA within 5 %, engine = raw FIFO): {}",
        if ok { "met" } else { "NOT met" }
    );
}
