//! Who the client is behind a reverse proxy. Forwarding headers are believed
//! only from peers in `trusted_proxies` (empty by default: every header is
//! ignored and the peer is the client). From a trusted peer, the client is
//! the rightmost address of the `Forwarded` (RFC 7239) or `X-Forwarded-For`
//! chain that is not itself a trusted proxy, so a client cannot choose its
//! own address by sending the header itself; `X-Forwarded-Proto: https` (or
//! `proto=https`) marks the request as https for cookies' `Secure`.
//!
//! The result is put into the request once (`Client`, by `observe`), and the rate limits,
//! audit events and session lists read it from there.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// The list (CIDRs; a bare address is a /32 or /128).
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(Arc::new(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Who the client of a request from `peer` with `headers` is.
    pub fn client(&self, peer: Option<IpAddr>, headers: &poem::http::HeaderMap) -> Client {
        let Some(peer) = peer else { return Client { ip: None, https: false } };
        if !self.trusts(peer) {
            return Client { ip: Some(peer), https: false };
        }
        let (chain, proto) = forwarded(headers);
        // Rightmost first: the hops nearest to us were added by our proxies.
        let ip = chain.iter().rev().find(|ip| !self.trusts(**ip)).or(chain.first()).copied().unwrap_or(peer);
        let https = proto.is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
        Client { ip: Some(ip), https }
    }
}

/// The client of a request, as far as the trusted proxies say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// Its address.
    pub ip: Option<IpAddr>,
    /// Whether a trusted proxy says it came over https.
    pub https: bool,
}

/// The address chain and protocol a request was forwarded with: `Forwarded`
/// if present, else `X-Forwarded-For` and `X-Forwarded-Proto`.
fn forwarded(headers: &poem::http::HeaderMap) -> (Vec<IpAddr>, Option<String>) {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    };
    let standard = values("forwarded");
    if !standard.is_empty() {
        let mut chain = Vec::new();
        let mut proto = None;
        for element in standard.iter().flat_map(|v| v.split(',')) {
            for pair in element.split(';') {
                let Some((key, value)) = pair.trim().split_once('=') else { continue };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "for" => chain.extend(node_address(value)),
                    "proto" => proto = Some(value.to_owned()),
                    _ => {}
                }
            }
        }
        return (chain, proto);
    }
    let chain =
        values("x-forwarded-for").iter().flat_map(|v| v.split(',')).filter_map(|a| node_address(a.trim())).collect();
    (chain, values("x-forwarded-proto").last().map(|p| p.trim().to_owned()))
}

/// An address from a forwarding header: `192.0.2.1`, `192.0.2.1:4711`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711` or `2001:db8::1`; `unknown` and
/// obfuscated identifiers are none.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.parse().ok().or_else(|| node.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

/// The client a request came from (the peer when no middleware ran).
pub fn client_of(req: &poem::Request) -> Client {
    req.extensions()
        .get::<Client>()
        .copied()
        .unwrap_or(Client { ip: req.remote_addr().as_socket_addr().map(|addr| addr.ip()), https: false })
}

#[cfg(test)]
mod tests {
    use poem::http::{HeaderMap, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("address"))
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let proxies = TrustedProxies::default();
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https")]);
        assert_eq!(proxies.client(ip("198.51.100.1"), &spoofed), Client { ip: ip("198.51.100.1"), https: false });
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().expect("net"),
            "127.0.0.1".parse::<IpAddr>().expect("ip").into(),
        ]);
        let chain = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.2.3"), ("x-forwarded-proto", "https")]);
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &chain),
            Client { ip: ip("203.0.113.9"), https: true },
            "not the forged 1.2.3.4"
        );
        let standard =
            headers(&[("forwarded", r#"for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711";proto=https"#)]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &standard), Client { ip: ip("2001:db8:cafe::17"), https: true });
        let only_proxies = headers(&[("x-forwarded-for", "10.9.9.9")]);
        assert_eq!(proxies.client(ip("10.0.0.2"), &only_proxies).ip, ip("10.9.9.9"), "all trusted: the first hop");
        assert_eq!(proxies.client(ip("10.0.0.2"), &HeaderMap::new()).ip, ip("10.0.0.2"), "no header: the proxy itself");
    }

    #[test]
    fn node_addresses_take_every_rfc_7239_form() {
        assert_eq!(node_address("192.0.2.1:4711"), ip("192.0.2.1"));
        assert_eq!(node_address("[2001:db8::1]:80"), ip("2001:db8::1"));
        assert_eq!(node_address("2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(node_address("unknown"), None);
        assert_eq!(node_address("_hidden"), None);
    }
}
