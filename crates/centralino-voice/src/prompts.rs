//! The prompts shipped in `deploy/prompts` (English, 8 kHz, made by its
//! `generate.py`), built into the binary: with `prompts_dir` empty the voice
//! adapter plays these, so a first run needs no folder installed.

/// `(name, WAV file)` for every prompt in `deploy/prompts`.
const BUILT_IN: &[(&str, &[u8])] = &[
    (
        "digits/0",
        include_bytes!("../../../deploy/prompts/digits/0.wav"),
    ),
    (
        "digits/1",
        include_bytes!("../../../deploy/prompts/digits/1.wav"),
    ),
    (
        "digits/10",
        include_bytes!("../../../deploy/prompts/digits/10.wav"),
    ),
    (
        "digits/11",
        include_bytes!("../../../deploy/prompts/digits/11.wav"),
    ),
    (
        "digits/12",
        include_bytes!("../../../deploy/prompts/digits/12.wav"),
    ),
    (
        "digits/13",
        include_bytes!("../../../deploy/prompts/digits/13.wav"),
    ),
    (
        "digits/14",
        include_bytes!("../../../deploy/prompts/digits/14.wav"),
    ),
    (
        "digits/15",
        include_bytes!("../../../deploy/prompts/digits/15.wav"),
    ),
    (
        "digits/16",
        include_bytes!("../../../deploy/prompts/digits/16.wav"),
    ),
    (
        "digits/17",
        include_bytes!("../../../deploy/prompts/digits/17.wav"),
    ),
    (
        "digits/18",
        include_bytes!("../../../deploy/prompts/digits/18.wav"),
    ),
    (
        "digits/19",
        include_bytes!("../../../deploy/prompts/digits/19.wav"),
    ),
    (
        "digits/2",
        include_bytes!("../../../deploy/prompts/digits/2.wav"),
    ),
    (
        "digits/20",
        include_bytes!("../../../deploy/prompts/digits/20.wav"),
    ),
    (
        "digits/3",
        include_bytes!("../../../deploy/prompts/digits/3.wav"),
    ),
    (
        "digits/30",
        include_bytes!("../../../deploy/prompts/digits/30.wav"),
    ),
    (
        "digits/4",
        include_bytes!("../../../deploy/prompts/digits/4.wav"),
    ),
    (
        "digits/40",
        include_bytes!("../../../deploy/prompts/digits/40.wav"),
    ),
    (
        "digits/5",
        include_bytes!("../../../deploy/prompts/digits/5.wav"),
    ),
    (
        "digits/50",
        include_bytes!("../../../deploy/prompts/digits/50.wav"),
    ),
    (
        "digits/6",
        include_bytes!("../../../deploy/prompts/digits/6.wav"),
    ),
    (
        "digits/60",
        include_bytes!("../../../deploy/prompts/digits/60.wav"),
    ),
    (
        "digits/7",
        include_bytes!("../../../deploy/prompts/digits/7.wav"),
    ),
    (
        "digits/70",
        include_bytes!("../../../deploy/prompts/digits/70.wav"),
    ),
    (
        "digits/8",
        include_bytes!("../../../deploy/prompts/digits/8.wav"),
    ),
    (
        "digits/80",
        include_bytes!("../../../deploy/prompts/digits/80.wav"),
    ),
    (
        "digits/9",
        include_bytes!("../../../deploy/prompts/digits/9.wav"),
    ),
    (
        "digits/90",
        include_bytes!("../../../deploy/prompts/digits/90.wav"),
    ),
    (
        "digits/hundred",
        include_bytes!("../../../deploy/prompts/digits/hundred.wav"),
    ),
    (
        "digits/thousand",
        include_bytes!("../../../deploy/prompts/digits/thousand.wav"),
    ),
    (
        "menu/billing",
        include_bytes!("../../../deploy/prompts/menu/billing.wav"),
    ),
    (
        "menu/goodbye",
        include_bytes!("../../../deploy/prompts/menu/goodbye.wav"),
    ),
    (
        "menu/invalid",
        include_bytes!("../../../deploy/prompts/menu/invalid.wav"),
    ),
    (
        "menu/no-input",
        include_bytes!("../../../deploy/prompts/menu/no-input.wav"),
    ),
    (
        "menu/options",
        include_bytes!("../../../deploy/prompts/menu/options.wav"),
    ),
    (
        "menu/welcome",
        include_bytes!("../../../deploy/prompts/menu/welcome.wav"),
    ),
    (
        "moh/default",
        include_bytes!("../../../deploy/prompts/moh/default.wav"),
    ),
    (
        "queue/callback-confirmed",
        include_bytes!("../../../deploy/prompts/queue/callback-confirmed.wav"),
    ),
    (
        "queue/closed",
        include_bytes!("../../../deploy/prompts/queue/closed.wav"),
    ),
    (
        "queue/connecting",
        include_bytes!("../../../deploy/prompts/queue/connecting.wav"),
    ),
    (
        "queue/estimated-wait",
        include_bytes!("../../../deploy/prompts/queue/estimated-wait.wav"),
    ),
    (
        "queue/in-line",
        include_bytes!("../../../deploy/prompts/queue/in-line.wav"),
    ),
    (
        "queue/minute",
        include_bytes!("../../../deploy/prompts/queue/minute.wav"),
    ),
    (
        "queue/minutes",
        include_bytes!("../../../deploy/prompts/queue/minutes.wav"),
    ),
    (
        "queue/please-hold",
        include_bytes!("../../../deploy/prompts/queue/please-hold.wav"),
    ),
    (
        "queue/press-1-callback",
        include_bytes!("../../../deploy/prompts/queue/press-1-callback.wav"),
    ),
    (
        "queue/you-are-number",
        include_bytes!("../../../deploy/prompts/queue/you-are-number.wav"),
    ),
];

/// The built-in prompt `name`'s WAV file.
pub(crate) fn built_in(name: &str) -> Option<&'static [u8]> {
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in deploy/prompts is built in, and nothing else.
    #[test]
    fn every_shipped_prompt_is_built_in() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prompts");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("deploy/prompts is readable") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "wav") {
                    let rel = path.strip_prefix(&root).expect("under the root");
                    on_disk.push(rel.with_extension("").to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let mut built: Vec<String> = BUILT_IN.iter().map(|(n, _)| (*n).to_owned()).collect();
        built.sort();
        assert_eq!(
            built, on_disk,
            "update BUILT_IN in prompts.rs to match deploy/prompts"
        );
        for (name, wav) in BUILT_IN {
            assert!(
                centralino_telephony::wav::parse(wav).is_ok(),
                "{name} does not parse"
            );
        }
        assert!(built_in("menu/welcome").is_some());
        assert!(built_in("menu/nothing").is_none());
    }
}
