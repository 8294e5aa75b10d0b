// The one list of RabbitMQ name prefixes that tests and benchmarks use
// (`bus_prefix`: prefix + 10 hex digits). `cargo xtask test` includes this
// file to delete what an interrupted run left behind, and `bus_prefix`
// refuses a prefix not listed here, so the two cannot drift apart.

/// Bus prefixes of the test suites and benchmarks.
pub const BUS_PREFIXES: [&str; 13] = [
    "t", "rt", "hi", "em", "sm", "eb", "hbench", "vo", "dk", "ot", "sb", "dkb", "bench",
];
