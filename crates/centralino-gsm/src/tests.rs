use super::*;
use proptest::prelude::*;

/// Encoding, units, and segment sizes in units.
type Cut = (Encoding, usize, Vec<usize>);

fn case(text: &str) -> Cut {
    let e = encode(text);
    let per = |s: &Vec<u8>| match e.encoding {
        Encoding::Gsm7 => s.len(),
        Encoding::Ucs2 => s.len() / 2,
    };
    (e.encoding, e.units, e.segments.iter().map(per).collect())
}

#[test]
fn segmentation_edge_cases() {
    let gsm = Encoding::Gsm7;
    let ucs = Encoding::Ucs2;
    let a = |n: usize| "a".repeat(n);
    let table: Vec<(String, Cut)> = vec![
        (String::new(), (gsm, 0, vec![0])),
        (a(160), (gsm, 160, vec![160])),
        (a(161), (gsm, 161, vec![153, 8])),
        (a(306), (gsm, 306, vec![153, 153])),
        (a(307), (gsm, 307, vec![153, 153, 1])),
        // € is an extension character: two septets.
        (format!("{}€", a(158)), (gsm, 160, vec![160])),
        (format!("{}€", a(159)), (gsm, 161, vec![153, 8])),
        // The escape is never split from its character: 152 + ESC would end
        // the first part, so the pair moves to the second.
        (format!("{}€{}", a(152), a(10)), (gsm, 164, vec![152, 12])),
        (format!("{}[]", a(152)), (gsm, 156, vec![156])),
        (format!("{}[]{}", a(151), a(10)), (gsm, 165, vec![153, 12])),
        // One character outside GSM switches the whole message to UCS-2.
        (format!("{}ć", a(69)), (ucs, 70, vec![70])),
        (format!("{}ć", a(70)), (ucs, 71, vec![67, 4])),
        ("ж".repeat(70), (ucs, 70, vec![70])),
        ("ж".repeat(71), (ucs, 71, vec![67, 4])),
        // An emoji is two UTF-16 units and is never split.
        (format!("{}😀", a(68)), (ucs, 70, vec![70])),
        (format!("{}😀", a(69)), (ucs, 71, vec![67, 4])),
        (format!("{}😀{}", a(66), a(5)), (ucs, 73, vec![66, 7])),
        // Accented letters that GSM has stay GSM; those it lacks do not.
        ("perché è così".to_owned(), (gsm, 13, vec![13])),
        ("canción".to_owned(), (ucs, 7, vec![7])),
        ("è à ù ì ò É Ñ ß £ ¥ § ¿ ¡".to_owned(), (gsm, 25, vec![25])),
    ];
    for (text, expected) in table {
        assert_eq!(case(&text), expected, "{text:?}");
    }
}

#[test]
fn gsm_round_trips_and_ucs2_round_trips() {
    let text = "Ciao! Il totale è 10€ [rif. {42}] ~ \\ ^ | @£$¥ ΔΦΓΛΩΠΨΣΘΞ\nfine";
    let e = encode(text);
    assert_eq!(e.encoding, Encoding::Gsm7);
    let joined: Vec<u8> = e.segments.concat();
    assert_eq!(decode_gsm(&joined), text);
    let e = encode("Привет 😀 ć");
    assert_eq!(e.encoding, Encoding::Ucs2);
    assert_eq!(decode_ucs2(&e.segments.concat()), "Привет 😀 ć");
    assert_eq!(decode_ucs2(&[0xD8, 0x3D]), "\u{FFFD}");
    assert_eq!(decode_gsm(&[0x41, ESC]), "A\u{FFFD}");
    assert_eq!(e.encoding.data_coding(), 8);
    assert_eq!(udh(7, 3, 2), [5, 0, 3, 7, 3, 2]);
}

#[test]
fn udh_is_split_from_the_text() {
    let bytes = [5, 0, 3, 9, 2, 1, b'h', b'i'];
    assert_eq!(split_udh(&bytes, true), (Some((9, 2, 1)), &b"hi"[..]));
    assert_eq!(split_udh(&bytes, false), (None, &bytes[..]));
    assert_eq!(
        split_udh(&[9, 1], true),
        (None, &[9, 1][..]),
        "a header longer than the message"
    );
    assert_eq!(split_udh(&[], true), (None, &[][..]));
    assert_eq!(decode(&[0x48, 0x69], 0), "Hi");
    assert_eq!(decode(&[0x00, 0xE9], 8), "é");
    assert_eq!(decode(&[0xE9], 3), "é");
}

#[test]
fn keywords_are_whole_messages() {
    for stop in [
        "STOP",
        "stop",
        " Stop \n",
        "STOP.",
        "stop!",
        "UNSUBSCRIBE",
        "end",
        "Quit",
        "STOPALL",
        "revoke",
        "optout",
        "cancel",
    ] {
        assert_eq!(keyword(stop), Some(Keyword::OptOut), "{stop:?}");
    }
    for start in ["START", "unstop", " Start "] {
        assert_eq!(keyword(start), Some(Keyword::OptIn), "{start:?}");
    }
    assert_eq!(keyword("help"), Some(Keyword::Help));
    for other in ["please stop", "stopp", "", "STOP STOP", "ST OP"] {
        assert_eq!(keyword(other), None, "{other:?}");
    }
}

#[test]
fn receipts_are_read() {
    let r = receipt("id:sim7 sub:001 dlvr:001 submit date:2611282210 done date:2611282210 stat:DELIVRD err:000 text:Ciao")
        .expect("a receipt");
    assert_eq!(
        (r.id.as_str(), r.stat.as_str(), r.err.as_str(), r.status()),
        ("sim7", "DELIVRD", "000", "delivered")
    );
    let r = receipt("id:ABC sub:001 dlvr:000 stat:undeliv err:034").expect("a receipt");
    assert_eq!((r.status(), r.err.as_str()), ("failed", "034"));
    assert_eq!(receipt("stat:DELIVRD"), None, "no id");
    assert_eq!(receipt("hello"), None);
    // Case and extra spaces in the text part do not confuse it.
    assert_eq!(
        receipt("ID:x STAT:ENROUTE").map(|r| r.status()),
        Some("sent")
    );
}

proptest! {
    #[test]
    fn receipt_parsing_never_panics(text in "\\PC{0,200}") {
        let _ = receipt(&text);
    }

    #[test]
    fn segments_respect_limits_and_rebuild_the_text(text in "\\PC{0,400}") {
        let e = encode(&text);
        let (single, part) = e.encoding.limits();
        let sizes: Vec<usize> = e.segments.iter().map(|s| match e.encoding {
            Encoding::Gsm7 => s.len(),
            Encoding::Ucs2 => s.len() / 2,
        }).collect();
        if sizes.len() == 1 {
            prop_assert!(sizes[0] <= single);
        } else {
            prop_assert!(sizes.iter().all(|s| *s <= part && *s > 0));
        }
        let rebuilt = match e.encoding {
            Encoding::Gsm7 => e.segments.iter().map(|s| decode_gsm(s)).collect::<String>(),
            Encoding::Ucs2 => e.segments.iter().map(|s| decode_ucs2(s)).collect::<String>(),
        };
        // Every segment decodes on its own: nothing was split mid-character.
        prop_assert_eq!(rebuilt, text);
    }

    #[test]
    fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_gsm(&bytes);
        let _ = decode_ucs2(&bytes);
    }
}

/// The table the browser's SMS composer is tested against too
/// (`web/test/sms.test.mjs`): the count an agent sees is the count sent.
#[test]
fn the_shared_segment_table_matches() {
    let table: serde_json::Value =
        serde_json::from_str(include_str!("../tests/segments.json")).expect("segments.json");
    let cases = table.as_array().expect("an array of cases");
    assert!(cases.len() >= 25, "the table keeps its cases");
    for c in cases {
        let text = c["text"].as_str().expect("text");
        let e = encode(text);
        assert_eq!(
            (e.encoding.name(), e.units as u64, e.segment_count() as u64),
            (
                c["encoding"].as_str().expect("encoding"),
                c["units"].as_u64().expect("units"),
                c["segments"].as_u64().expect("segments")
            ),
            "{text:?}"
        );
    }
}
