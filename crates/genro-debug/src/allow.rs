//! Who may connect: the allowlist of addresses and networks (`allowed_ips`), checked on the
//! socket's peer address.

use std::{fmt, net::IpAddr, str::FromStr};

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it carries: a dual-stack
/// socket reports IPv4 clients that way.
fn unmapped(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// An IP network: `10.0.0.0/8`, `::1`, `127.0.0.1` (a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` is in the network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
    /// treated as the IPv4 address it carries.
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, unmapped(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl From<IpAddr> for Cidr {
    /// The network of this one address.
    fn from(addr: IpAddr) -> Self {
        let network = unmapped(addr);
        Self {
            network,
            prefix: if network.is_ipv4() { 32 } else { 128 },
        }
    }
}

impl fmt::Display for Cidr {
    /// `10.0.0.0/8`; a single address without its prefix (`127.0.0.1`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let single = if self.network.is_ipv4() { 32 } else { 128 };
        if self.prefix == single {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

/// Why a text is not a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCidr;

impl fmt::Display for InvalidCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an IP address or network such as 127.0.0.1, 10.0.0.0/8 or ::1/128")
    }
}

impl std::error::Error for InvalidCidr {}

impl FromStr for Cidr {
    type Err = InvalidCidr;

    fn from_str(text: &str) -> Result<Self, InvalidCidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| InvalidCidr)?;
        let network = unmapped(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(InvalidCidr)?,
        };
        Ok(Self { network, prefix })
    }
}

/// The addresses and networks allowed to connect. Empty allows no one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    /// The list of these networks.
    #[must_use]
    pub fn new(networks: impl IntoIterator<Item = Cidr>) -> Self {
        Self(networks.into_iter().collect())
    }

    /// Loopback only: `127.0.0.1` and `::1`.
    #[must_use]
    pub fn loopback() -> Self {
        Self::new([
            Cidr::from(IpAddr::from([127, 0, 0, 1])),
            Cidr::from(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
        ])
    }

    /// Whether `addr` (a socket's peer address, never a header) may connect.
    #[must_use]
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(addr))
    }

    /// The networks.
    #[must_use]
    pub fn networks(&self) -> &[Cidr] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_single_addresses_and_mapped_ipv4() {
        let list = AllowList::new(
            ["127.0.0.1", "10.0.0.0/8", "::1"]
                .iter()
                .map(|t| t.parse::<Cidr>().unwrap()),
        );
        assert!(list.allows("127.0.0.1".parse().unwrap()));
        assert!(list.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(list.allows("::ffff:10.9.8.7".parse().unwrap()));
        assert!(list.allows("10.200.3.4".parse().unwrap()));
        assert!(!list.allows("11.0.0.1".parse().unwrap()));
        assert!(!list.allows("127.0.0.2".parse().unwrap()));
        assert!(list.allows("::1".parse().unwrap()));
        assert!(!list.allows("::2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        assert!(!AllowList::default().allows("127.0.0.1".parse().unwrap()));
    }
}
