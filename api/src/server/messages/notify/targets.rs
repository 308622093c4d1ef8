//! Where webhooks may go: not into the ISP's own network unless the operator says so.
//!
//! The outbox worker posts to URLs an admin stored. Without a rule, an admin key (or
//! whoever holds one) could make the worker call `http://169.254.169.254/…` (a cloud's
//! metadata service), `127.0.0.1` or a private address, and read or change things there.
//! So loopback, link-local, private (RFC 1918, unique-local IPv6), shared (CGNAT),
//! unspecified, multicast and reserved addresses are refused — when the endpoint is
//! stored (an address in the URL, `localhost`) and again at delivery for the addresses a
//! host name resolves to (a name can point anywhere, and change). The operator allows a
//! network with `--webhook-allow-network 10.20.0.0/16` (repeatable, or
//! `DESPACHO_WEBHOOK_ALLOW_NETWORKS=a,b`) for a chat integration on the private network.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Networks the operator allows besides the public internet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookTargets {
    allowed: Vec<IpNet>,
}

/// The option of `despacho serve` and `despacho worker`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WebhookTargetArgs {
    /// A network webhooks may reach although it is not public, e.g. `10.20.0.0/16` or
    /// `127.0.0.1/32` (loopback, link-local and private addresses are refused
    /// otherwise). Repeat it, or separate networks with commas.
    #[arg(
        long = "webhook-allow-network",
        value_name = "CIDR",
        env = "DESPACHO_WEBHOOK_ALLOW_NETWORKS",
        value_delimiter = ','
    )]
    pub allow: Vec<IpNet>,
}

impl WebhookTargetArgs {
    pub fn targets(&self) -> WebhookTargets {
        WebhookTargets::allowing(self.allow.clone())
    }
}

impl WebhookTargets {
    pub fn allowing(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Why `ip` may not be a webhook target, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return None;
        }
        match ip {
            IpAddr::V4(v4) => v4_refusal(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4_refusal(v4),
                None => v6_refusal(v6),
            },
        }
    }

    /// Checks the host of a URL being stored: an address literal (`10.0.0.5:9000`,
    /// `[::1]`) or a `localhost` name is judged now; other names at each delivery.
    pub fn check_host(&self, host_and_port: &str) -> Result<(), String> {
        let host = match host_and_port.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => host_and_port
                .rsplit_once(':')
                .map_or(host_and_port, |(h, _)| h),
        };
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = if name == "localhost" || name.ends_with(".localhost") {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        } else {
            name.parse::<IpAddr>().ok()
        };
        match ip.and_then(|ip| self.refusal(ip).map(|why| (ip, why))) {
            None => Ok(()),
            Some((ip, why)) => Err(refusal_message(ip, why)),
        }
    }
}

/// The words of a refusal, with what the operator can do.
pub fn refusal_message(ip: IpAddr, why: &str) -> String {
    format!(
        "{ip} is {why}: webhooks do not go into the operator's own network unless it is \
         allowed (`despacho serve --webhook-allow-network {}`)",
        IpNet::from(ip)
    )
}

fn v4_refusal(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address"
    } else if ip.is_link_local() {
        "a link-local address (e.g. a cloud metadata service)"
    } else if ip.is_unspecified() || a == 0 {
        "an unspecified address"
    } else if a == 100 && (64..128).contains(&b) {
        "a shared (carrier-grade NAT) address"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "a multicast, broadcast or reserved address"
    } else if a == 198 && (18..20).contains(&b) {
        "a benchmarking address"
    } else {
        return None;
    })
}

fn v6_refusal(ip: Ipv6Addr) -> Option<&'static str> {
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_unique_local() {
        "a private (unique-local) address"
    } else if ip.is_unicast_link_local() {
        "a link-local address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else {
        return None;
    })
}

/// A `ureq` resolver that drops refused addresses after the system resolved the name,
/// so the connection is only ever made to an address that passed.
#[derive(Debug)]
pub struct GuardedResolver {
    pub targets: WebhookTargets,
    pub inner: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let resolved = self.inner.resolve(uri, config, timeout)?;
        let mut kept = self.empty();
        let mut first_refusal = None;
        for addr in resolved.iter() {
            match self.targets.refusal(addr.ip()) {
                None => kept.push(*addr),
                Some(why) => {
                    first_refusal.get_or_insert((addr.ip(), why));
                }
            }
        }
        match (kept.is_empty(), first_refusal) {
            (true, Some((ip, why))) => Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                RefusedTarget(refusal_message(ip, why)),
            ))),
            _ => Ok(kept),
        }
    }
}

/// The error of a refused address, inside the `io::Error` the resolver returns, so the
/// worker can tell it from a network failure (it is permanent: retrying cannot help).
#[derive(Debug, thiserror::Error)]
#[error("refused webhook target: {0}")]
pub struct RefusedTarget(pub String);

impl RefusedTarget {
    /// Whether `error` is a refusal of the target's address.
    pub fn is(error: &std::io::Error) -> bool {
        error.get_ref().is_some_and(|e| e.is::<RefusedTarget>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = WebhookTargets::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(strict.refusal(ip).is_some(), "{ip}");
        }
        for ip in ["8.8.8.8", "200.160.2.3", "2001:4860::8888"] {
            assert_eq!(strict.refusal(ip.parse().unwrap()), None, "{ip}");
        }
        let allowing = WebhookTargets::allowing(vec!["10.20.0.0/16".parse().unwrap()]);
        assert_eq!(allowing.refusal("10.20.3.4".parse().unwrap()), None);
        assert!(allowing.refusal("10.21.3.4".parse().unwrap()).is_some());
    }

    #[test]
    fn hosts_in_urls() {
        let strict = WebhookTargets::default();
        for host in [
            "127.0.0.1:8080",
            "169.254.169.254",
            "[::1]:9000",
            "localhost:3000",
            "api.localhost",
            "LOCALHOST.",
        ] {
            let refused = strict.check_host(host).expect_err(host);
            assert!(refused.contains("--webhook-allow-network"), "{refused}");
        }
        for host in ["chat.example.com", "chat.example.com:8443", "8.8.8.8:80"] {
            assert_eq!(strict.check_host(host), Ok(()), "{host}");
        }
    }
}
