//! The `allowed_ips` parser: one network (genro-debug's `Cidr`) and the config key's list. A
//! network that parses prints as text that parses to the same network, and contains its own
//! address; a list the config accepts has exactly the networks its items parse to.
#![no_main]

use genro_debug::Cidr;
use genro_server::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cidr) = text.parse::<Cidr>() {
        let shown = cidr.to_string();
        assert_eq!(
            shown.parse::<Cidr>(),
            Ok(cidr),
            "{text:?} printed as {shown:?}"
        );
        let address = shown.split('/').next().unwrap().parse().unwrap();
        assert!(
            cidr.contains(address),
            "{shown} does not contain its own address"
        );
    }

    // The key's value as the `.ini` reader hands it over: one line, no comment in it.
    if text.contains(['\n', '\r', '#', ';']) {
        return;
    }
    let ini = format!("[debug]\nallowed_ips = {text}\n");
    if let Ok(config) = Config::from_ini_str(&ini, "fuzz.ini", Vec::new()) {
        // Items are separated by commas or blanks.
        let items: Vec<&str> = text
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .collect();
        let networks = config.debug.allowed_ips.networks();
        assert_eq!(networks.len(), items.len(), "{text:?}");
        for (item, network) in items.iter().zip(networks) {
            assert_eq!(item.parse::<Cidr>().as_ref(), Ok(network), "{text:?}");
        }
    }
});
