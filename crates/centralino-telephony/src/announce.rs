//! Prompt names for what the voice channel says: numbers in English and
//! queue position announcements. The adapter plays
//! `deploy/prompts/<name>.wav` for each name, in order.

/// `digits/0` to `digits/19`.
const UNITS: [&str; 20] = [
    "digits/0",
    "digits/1",
    "digits/2",
    "digits/3",
    "digits/4",
    "digits/5",
    "digits/6",
    "digits/7",
    "digits/8",
    "digits/9",
    "digits/10",
    "digits/11",
    "digits/12",
    "digits/13",
    "digits/14",
    "digits/15",
    "digits/16",
    "digits/17",
    "digits/18",
    "digits/19",
];
/// `digits/20` to `digits/90`, by tens.
const TENS: [&str; 8] = [
    "digits/20",
    "digits/30",
    "digits/40",
    "digits/50",
    "digits/60",
    "digits/70",
    "digits/80",
    "digits/90",
];
const HUNDRED: &str = "digits/hundred";
const THOUSAND: &str = "digits/thousand";
const YOU_ARE_NUMBER: &str = "queue/you-are-number";
const IN_LINE: &str = "queue/in-line";
const ESTIMATED_WAIT: &str = "queue/estimated-wait";
const MINUTE: &str = "queue/minute";
const MINUTES: &str = "queue/minutes";

/// The prompts that say `n` in English: "three hundred forty two" is
/// `digits/3 digits/hundred digits/40 digits/2`. Above 999,999 the number is
/// said digit by digit.
pub fn say_number(n: u64) -> Vec<String> {
    let mut out = Vec::new();
    if n > 999_999 {
        let digits = n.to_string();
        out.extend(digits.bytes().map(|d| UNITS[usize::from(d - b'0')]));
    } else if n == 0 {
        out.push(UNITS[0]);
    } else {
        let (thousands, rest) = (n / 1000, n % 1000);
        if thousands > 0 {
            below_thousand(thousands as usize, &mut out);
            out.push(THOUSAND);
        }
        below_thousand(rest as usize, &mut out);
    }
    out.into_iter().map(str::to_owned).collect()
}

/// Says 1..=999; nothing for 0.
fn below_thousand(n: usize, out: &mut Vec<&'static str>) {
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        out.extend([UNITS[hundreds], HUNDRED]);
    }
    match rest {
        0 => {}
        1..20 => out.push(UNITS[rest]),
        _ => {
            out.push(TENS[rest / 10 - 2]);
            if rest % 10 > 0 {
                out.push(UNITS[rest % 10]);
            }
        }
    }
}

/// "You are number N in line[, the estimated wait is M minutes]": nothing
/// for position 0 (not queued); the wait is rounded up to whole minutes, at
/// least one.
pub fn position_announcement(position: u64, estimated_wait_ms: Option<u64>) -> Vec<String> {
    if position == 0 {
        return Vec::new();
    }
    let mut out = vec![YOU_ARE_NUMBER.to_owned()];
    out.extend(say_number(position));
    out.push(IN_LINE.to_owned());
    if let Some(ms) = estimated_wait_ms {
        let minutes = ms.div_ceil(60_000).max(1);
        out.push(ESTIMATED_WAIT.to_owned());
        out.extend(say_number(minutes));
        out.push(if minutes == 1 { MINUTE } else { MINUTES }.to_owned());
    }
    out
}

/// Every name [`say_number`] and [`position_announcement`] can produce, to
/// check at startup that each prompt file exists.
pub fn all_prompt_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = UNITS.iter().chain(&TENS).copied().collect();
    names.extend([
        HUNDRED,
        THOUSAND,
        YOU_ARE_NUMBER,
        IN_LINE,
        ESTIMATED_WAIT,
        MINUTE,
        MINUTES,
    ]);
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn said(n: u64) -> String {
        say_number(n).join(" ").replace("digits/", "")
    }

    #[test]
    fn numbers() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (13, "13"),
            (19, "19"),
            (20, "20"),
            (21, "20 1"),
            (99, "90 9"),
            (100, "1 hundred"),
            (110, "1 hundred 10"),
            (342, "3 hundred 40 2"),
            (1000, "1 thousand"),
            (1005, "1 thousand 5"),
            (20_020, "20 thousand 20"),
            (999_999, "9 hundred 90 9 thousand 9 hundred 90 9"),
            (1_000_000, "1 0 0 0 0 0 0"),
            (u64::MAX, "1 8 4 4 6 7 4 4 0 7 3 7 0 9 5 5 1 6 1 5"),
        ];
        for (n, words) in cases {
            assert_eq!(said(n), words, "{n}");
        }
        assert_eq!(
            say_number(342),
            ["digits/3", "digits/hundred", "digits/40", "digits/2"]
        );
    }

    #[test]
    fn announcements() {
        assert!(position_announcement(0, Some(60_000)).is_empty());
        assert_eq!(
            position_announcement(3, None),
            ["queue/you-are-number", "digits/3", "queue/in-line"]
        );
        let with_wait = |ms| position_announcement(21, Some(ms)).join(" ");
        assert_eq!(
            with_wait(60_000),
            "queue/you-are-number digits/20 digits/1 queue/in-line \
             queue/estimated-wait digits/1 queue/minute"
        );
        assert!(with_wait(0).ends_with("queue/estimated-wait digits/1 queue/minute"));
        assert!(with_wait(61_000).ends_with("queue/estimated-wait digits/2 queue/minutes"));
        assert!(with_wait(45 * 60_000).ends_with("digits/40 digits/5 queue/minutes"));
    }

    #[test]
    fn prompt_list_is_complete_and_unique() {
        let names = all_prompt_names();
        assert_eq!(names.len(), 20 + 8 + 7);
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert!(names.contains(&"digits/19") && names.contains(&"digits/90"));
    }

    proptest! {
        #[test]
        fn every_name_said_is_listed(position in 0u64..2_000_000, wait in proptest::option::of(any::<u64>())) {
            let names = all_prompt_names();
            for name in position_announcement(position, wait).iter().chain(&say_number(position)) {
                prop_assert!(names.contains(&name.as_str()), "{name}");
            }
        }
    }
}
