//! The W3C `traceparent` parser: never a panic, and a version-00 value it accepts prints back
//! byte for byte (lowercase hex, nothing dropped or repaired).
#![no_main]

use genro_envelope::Traceparent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = Traceparent::parse(data) else {
        return;
    };
    assert_ne!(&data[..2], b"ff");
    let printed = format!(
        "{}-{}-{}-{:02x}",
        std::str::from_utf8(&data[..2]).expect("a parsed version is hex"),
        parsed.trace_id,
        parsed.parent_id,
        parsed.flags
    );
    assert_eq!(printed.as_bytes(), &data[..55]);
    if &data[..2] == b"00" {
        assert_eq!(data.len(), 55);
    }
});
