//! Cutting bulk statements to a size the connection sends without stalling.
//!
//! sqlx 0.9.0 leaves Nagle's algorithm on for TCP connections
//! (launchbadge/sqlx#4335; the fix, #4336, is merged but not released). A
//! client message larger than the socket's initial send buffer (16 KiB) then
//! waits for the server's delayed ACK: about 40 ms per statement, measured here
//! (`history_bench probe`), whatever the statement does. Bulk statements are
//! therefore cut so each stays under [`STATEMENT_BYTES`]; a single row larger
//! than that (a long email body) still goes alone, and pays the delay once.
//! Unix-socket connections (`?host=/var/run/postgresql`) are not affected.

/// The most bytes one bulk statement should send.
pub const STATEMENT_BYTES: usize = 12 * 1024;

/// Per-value overhead on the wire (length prefix, format code, placeholder).
pub const VALUE_OVERHEAD: usize = 8;

/// Splits `items` into consecutive runs whose estimated size (`size` of each
/// item, in bytes) stays within [`STATEMENT_BYTES`]; every run has at least
/// one item and at most `max_rows`.
pub fn by_size<T>(items: &[T], max_rows: usize, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let max_rows = max_rows.max(1);
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let s = size(item);
        if i > start && (bytes + s > STATEMENT_BYTES || i - start >= max_rows) {
            out.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += s;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// The estimated wire size of a row of text values.
pub fn text_row(values: &[&str]) -> usize {
    values.iter().map(|v| v.len() + VALUE_OVERHEAD).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_stay_within_the_budget_and_the_row_limit_and_keep_every_item() {
        let items: Vec<usize> = (0..1_000).map(|i| 10 + (i * 37) % 500).collect();
        let runs = by_size(&items, 64, |s| *s);
        assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), items.len());
        for r in &runs {
            assert!(!r.is_empty() && r.len() <= 64);
            assert!(r.len() == 1 || r.iter().sum::<usize>() <= STATEMENT_BYTES);
        }
        // A row larger than the budget goes alone.
        let big = [5, STATEMENT_BYTES * 2, 5];
        let runs = by_size(&big, 100, |s| *s);
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), [1, 1, 1]);
        assert!(by_size::<usize>(&[], 10, |s| *s).is_empty());
    }
}
