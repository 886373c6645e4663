//! The `.ini` reader with environment overrides: any text, and any `GENRO_ASGI_*` variables,
//! give a config or a list of problems, never a panic. The input is the file's text, then a NUL
//! byte, then one `NAME=value` line per variable (`GENRO_ASGI_` is added when missing).
#![no_main]

use genro_server::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (ini, vars) = text.split_once('\0').unwrap_or((&text, ""));
    let env: Vec<(String, String)> = vars
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let name = if name.starts_with("GENRO_ASGI_") {
                name.to_owned()
            } else {
                format!("GENRO_ASGI_{name}")
            };
            (name, value.to_owned())
        })
        .collect();
    match Config::from_ini_str(ini, "fuzz.ini", env) {
        Ok(config) => {
            // What `--print-config` shows renders from every value read.
            let shown = config.render_effective();
            assert!(shown.contains("[server]"), "{shown}");
        }
        Err(problems) => {
            // Every problem names where it came from and what is wrong.
            let said = problems.to_string();
            assert!(!said.trim().is_empty());
        }
    }
});
