//! The debug console's message decoder, the first code a client's text reaches after the
//! WebSocket frame: any text gives a command or an error, never a panic, and a command
//! encodes and decodes back to itself.
#![no_main]

use genro_debug::protocol::ClientMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = ClientMessage::decode(text) {
        let encoded = serde_json::to_string(&message).expect("a message encodes");
        assert_eq!(
            ClientMessage::decode(&encoded).expect("its own encoding decodes"),
            message
        );
    }
});
