//! The simulator against Erlang C on a shorter run than the 10⁶-call example.

use centralino_routing::sim::{erlang_c, simulate};

#[test]
fn a_single_queue_behaves_like_erlang_c() {
    let (pw, asa) = erlang_c(48.0, 55, 240.0);
    let mut progress = 0;
    let r = simulate(48.0, 55, 240.0, 150_000, 7, |_| progress += 1).expect("simulation");
    assert_eq!(r.calls, 150_000);
    assert_eq!(progress, 10);
    // A shorter run is noisier than the 10⁶ calls of the example: wider bands.
    assert!(
        (r.p_wait() - pw).abs() < 0.03,
        "P(wait) {} vs {pw}",
        r.p_wait()
    );
    assert!(
        (r.asa_s() / asa - 1.0).abs() < 0.12,
        "ASA {} vs {asa}",
        r.asa_s()
    );
}

#[test]
fn the_engine_serves_exactly_like_a_fifo_queue_given_the_same_random_numbers() {
    let engine = simulate(48.0, 55, 240.0, 50_000, 3, |_| {}).expect("simulation");
    let raw = centralino_routing::sim::simulate_fifo(48.0, 55, 240.0, 50_000, 3);
    assert_eq!(engine.calls, raw.calls);
    assert_eq!(engine.waited, raw.waited);
    assert!((engine.asa_s() - raw.asa_s()).abs() < 1e-6 * raw.asa_s().max(1.0));
}
