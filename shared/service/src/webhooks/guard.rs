//! Where a webhook may go: https to a public address, or anything to a host the operator listed.
//!
//! A URL a client gives is only ever a webhook target, never an input to fetch. Every address its
//! host resolves to is checked against the ranges that reach the server's own network (loopback,
//! private, link-local with the cloud metadata address, unspecified, CGNAT, multicast, and the
//! IPv4-mapped and NAT64 IPv6 forms of those), and the connection goes to an address that passed
//! (see [`GuardedResolver`]): a name that resolves to a public address for the check and a private
//! one for the connection cannot slip through.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// `host:port` entries (FF_WEBHOOK_ALLOWED_HOSTS) exempt from the https rule and the address check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedHosts(HashSet<String>);

impl AllowedHosts {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut hosts = HashSet::new();
        for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            let (host, port) = entry.rsplit_once(':').ok_or_else(|| format!("`{entry}` is not host:port"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!("`{entry}` is not host:port"));
            }
            hosts.insert(entry.to_ascii_lowercase());
        }
        Ok(Self(hosts))
    }

    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.0.contains(&format!("{}:{port}", host.trim_matches(['[', ']']).to_ascii_lowercase()))
            || self.0.contains(&format!("{}:{port}", host.to_ascii_lowercase()))
    }
}

/// Whether an address reaches only the public internet.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            let segments = v6.segments();
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6 == Ipv6Addr::from([0u8; 16]))
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    let cgnat = a == 100 && (64..128).contains(&b);
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local() // includes 169.254.169.254, the cloud metadata service
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || cgnat
        || a == 0
        || a >= 240)
}

/// The addresses `host` resolves to that a webhook may connect to: all of them for an allowed
/// host, else the public ones.
pub fn guarded_addresses(host: &str, port: u16, allowed: &AllowedHosts) -> Vec<SocketAddr> {
    let exempt = allowed.allows(host, port);
    let Ok(resolved) = (host.trim_matches(['[', ']']), port).to_socket_addrs() else { return Vec::new() };
    resolved.filter(|address| exempt || is_public(address.ip())).collect()
}

/// Resolves a webhook's host and keeps only the addresses the guard allows; ureq connects to what
/// this returns, so the checked address is the one connected to. Redirects are off in the agent.
#[derive(Debug)]
pub struct GuardedResolver {
    pub allowed: AllowedHosts,
}

impl Resolver for GuardedResolver {
    fn resolve(&self, uri: &Uri, _config: &Config, _timeout: NextTimeout) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
        let found = guarded_addresses(host, port, &self.allowed);
        if found.is_empty() {
            // Every address was refused (or none found): nothing is connected to.
            return Err(ureq::Error::HostNotFound);
        }
        let mut addresses = self.empty();
        // ureq keeps at most this many addresses.
        for address in found.into_iter().take(16) {
            addresses.push(address);
        }
        Ok(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_networks_are_refused_in_every_spelling() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
        ];
        for address in refused {
            assert!(!is_public(address.parse().unwrap()), "{address} must be refused");
        }
        for address in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"] {
            assert!(is_public(address.parse().unwrap()), "{address} is public");
        }
    }

    #[test]
    fn allowed_hosts_are_host_and_port() {
        let allowed = AllowedHosts::parse("127.0.0.1:8080, Receiver.Test:443").unwrap();
        assert!(allowed.allows("127.0.0.1", 8080));
        assert!(!allowed.allows("127.0.0.1", 8081));
        assert!(allowed.allows("receiver.test", 443));
        assert!(AllowedHosts::parse("localhost").is_err());
    }

    #[test]
    fn a_name_resolving_to_loopback_is_refused_unless_allowed() {
        assert!(guarded_addresses("localhost", 9, &AllowedHosts::default()).is_empty());
        assert!(guarded_addresses("127.0.0.1", 9, &AllowedHosts::default()).is_empty());
        assert!(guarded_addresses("[::1]", 9, &AllowedHosts::default()).is_empty());
        let allowed = AllowedHosts::parse("localhost:9").unwrap();
        assert!(!guarded_addresses("localhost", 9, &allowed).is_empty());
    }
}
