//! Where jobs may connect: an optional allow-list the deployment sets (for example
//! `SYNCGUARD_LDAP_ALLOWED_HOSTS=ldap.corp.example:636,*.dc.corp.example`), so an operator
//! cannot point a job at a server of their own choosing. Without a list every host is
//! allowed.

/// One pattern: `host`, `*.suffix`, either with `:port` or `:*`; IPv6 in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: an IPv6 address needs its closing ]"))?;
            (host.to_owned(), after.strip_prefix(':'))
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (text.to_owned(), None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(format!("{text:?} is not a host pattern"));
        }
        let port = match port {
            None | Some("*") => None,
            Some(port) => Some(
                port.parse::<u16>()
                    .map_err(|_| format!("{text:?}: {port:?} is not a port"))?,
            ),
        };
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == self.host,
        };
        host_ok && self.port.is_none_or(|wanted| wanted == port)
    }
}

/// The hosts jobs may connect to.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    patterns: Option<Vec<HostPattern>>,
    variable: &'static str,
}

impl AllowedHosts {
    /// Reads the comma-separated list in `variable`; unset or empty allows every host.
    pub fn from_env(variable: &'static str) -> Result<Self, String> {
        Self::parse(variable, std::env::var(variable).ok().as_deref())
    }

    /// Parses a list (`None`: no restriction); errors name the variable.
    pub fn parse(variable: &'static str, list: Option<&str>) -> Result<Self, String> {
        let patterns = match list.map(str::trim).filter(|list| !list.is_empty()) {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .filter(|item| !item.trim().is_empty())
                    .map(HostPattern::parse)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| format!("{variable}: {error}"))?,
            ),
        };
        Ok(Self { patterns, variable })
    }

    /// Whether a job may connect to `host:port`; the error says which list refused it.
    pub fn check(&self, host: &str, port: u16) -> Result<(), String> {
        match &self.patterns {
            None => Ok(()),
            Some(patterns) if patterns.iter().any(|pattern| pattern.matches(host, port)) => Ok(()),
            Some(_) => Err(format!(
                "{host}:{port} is not among the hosts this deployment allows ({})",
                self.variable
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_hosts_and_ports_are_allowed() {
        let list = AllowedHosts::parse(
            "SYNCGUARD_LDAP_ALLOWED_HOSTS",
            Some("ldap.corp.example:636, *.dc.corp.example, [::1]:389, 127.0.0.1:*"),
        )
        .unwrap();
        assert!(list.check("ldap.corp.example", 636).is_ok());
        assert!(list.check("LDAP.corp.example", 636).is_ok());
        assert!(list.check("ldap.corp.example", 389).is_err());
        assert!(list.check("a.dc.corp.example", 389).is_ok());
        assert!(
            list.check("dc.corp.example", 389).is_err(),
            "the suffix needs a label"
        );
        assert!(list.check("evil.example", 636).is_err());
        assert!(list.check("::1", 389).is_ok());
        assert!(list.check("127.0.0.1", 10389).is_ok());
        let refused = list.check("evil.example", 389).unwrap_err();
        assert!(
            refused.contains("SYNCGUARD_LDAP_ALLOWED_HOSTS"),
            "{refused}"
        );
        assert!(
            AllowedHosts::parse("X", None)
                .unwrap()
                .check("any", 1)
                .is_ok()
        );
        assert!(AllowedHosts::parse("X", Some("host:port")).is_err());
    }
}
