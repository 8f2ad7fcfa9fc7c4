//! The text of `INFO` (sections server, clients, replication = the ring and
//! its members, keyspace) and of `CLIENT INFO`, in Redis's `field:value`
//! line format. Pure: the session gathers the facts.

use std::fmt::Write as _;

use crate::wire::client::MemberStatus;

/// The Redis version whose protocol and commands the front end follows
/// (what clients check before using a feature).
pub const REDIS_VERSION: &str = "7.0.0";

/// The sections `INFO` knows, in order.
const SECTIONS: &[&str] = &["server", "clients", "replication", "keyspace"];

/// What `INFO` reports.
#[derive(Clone, Debug, Default)]
pub struct InfoFacts {
    /// The node's id.
    pub node: String,
    /// The RESP listener's port.
    pub tcp_port: u16,
    /// Seconds since the listener started.
    pub uptime_s: u64,
    /// Open RESP connections.
    pub connected_clients: usize,
    /// N, R, W.
    pub n: usize,
    /// Default read quorum.
    pub r: usize,
    /// Default write quorum.
    pub w: usize,
    /// Every member the node knows (`None`: the failure detector did not
    /// answer).
    pub members: Option<Vec<MemberStatus>>,
    /// The keys `DBSIZE` would answer (`None`: the walk failed or the
    /// section was not asked for).
    pub keys: Option<u64>,
}

/// The sections `requested` names (empty, `default`, `all`, `everything`:
/// all four), unknown ones skipped as Redis does.
pub fn sections(requested: &[String]) -> Vec<&'static str> {
    let all = requested.is_empty()
        || requested
            .iter()
            .any(|s| matches!(s.as_str(), "default" | "all" | "everything"));
    SECTIONS
        .iter()
        .copied()
        .filter(|s| all || requested.iter().any(|r| r == s))
        .collect()
}

/// The `INFO` text for `sections`.
pub fn render(facts: &InfoFacts, sections: &[&str]) -> String {
    let mut out = String::new();
    for section in sections {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        match *section {
            "server" => {
                out.push_str("# Server\r\n");
                line(&mut out, "redis_version", REDIS_VERSION);
                line(&mut out, "ringkv_version", env!("CARGO_PKG_VERSION"));
                line(&mut out, "ringkv_node", &facts.node);
                line(&mut out, "redis_mode", "standalone");
                line(&mut out, "process_id", &std::process::id().to_string());
                line(&mut out, "tcp_port", &facts.tcp_port.to_string());
                line(&mut out, "uptime_in_seconds", &facts.uptime_s.to_string());
                line(
                    &mut out,
                    "uptime_in_days",
                    &(facts.uptime_s / 86_400).to_string(),
                );
            }
            "clients" => {
                out.push_str("# Clients\r\n");
                line(
                    &mut out,
                    "connected_clients",
                    &facts.connected_clients.to_string(),
                );
            }
            "replication" => {
                out.push_str("# Replication\r\n");
                // Every ringkv node takes writes: there are no replicas in
                // Redis's sense, only the ring's N copies of each key.
                line(&mut out, "role", "master");
                line(&mut out, "connected_slaves", "0");
                line(&mut out, "ringkv_n", &facts.n.to_string());
                line(&mut out, "ringkv_r", &facts.r.to_string());
                line(&mut out, "ringkv_w", &facts.w.to_string());
                match &facts.members {
                    Some(members) => {
                        line(&mut out, "ringkv_members", &members.len().to_string());
                        for (i, m) in members.iter().enumerate() {
                            let value = format!(
                                "id={},state={},addr={},client_addr={},dc={},rack={},owns={:.4}",
                                m.id, m.state, m.addr, m.client_addr, m.dc, m.rack, m.ring_share
                            );
                            line(&mut out, &format!("ringkv_member{i}"), &value);
                        }
                    }
                    None => line(&mut out, "ringkv_members", "unknown"),
                }
            }
            "keyspace" => {
                // As Redis: no line for an empty database. `expires` and
                // `avg_ttl` are not counted, so not shown.
                out.push_str("# Keyspace\r\n");
                if let Some(keys) = facts.keys.filter(|k| *k > 0) {
                    line(&mut out, "db0", &format!("keys={keys}"));
                }
            }
            _ => {}
        }
    }
    out
}

fn line(out: &mut String, field: &str, value: &str) {
    let _ = write!(out, "{field}:{value}\r\n");
}

/// What `CLIENT INFO` reports about one connection.
#[derive(Clone, Debug)]
pub struct ClientFacts<'a> {
    /// `CLIENT ID`.
    pub id: u64,
    /// The client's address.
    pub addr: String,
    /// The listener's address.
    pub laddr: String,
    /// `CLIENT SETNAME`.
    pub name: &'a [u8],
    /// 2 or 3.
    pub resp: u8,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: &'a [u8],
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: &'a [u8],
    /// `one`, `quorum` or `all`.
    pub consistency: &'a str,
    /// Seconds since the connection opened.
    pub age_s: u64,
}

/// The `CLIENT INFO` line.
pub fn client_line(c: &ClientFacts<'_>) -> String {
    format!(
        "id={} addr={} laddr={} name={} age={} db=0 resp={} lib-name={} lib-ver={} \
         ringkv-consistency={}\n",
        c.id,
        c.addr,
        c.laddr,
        String::from_utf8_lossy(c.name),
        c.age_s,
        c.resp,
        String::from_utf8_lossy(c.lib_name),
        String::from_utf8_lossy(c.lib_ver),
        c.consistency
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn section_names_pick_sections() {
        assert_eq!(sections(&[]), SECTIONS.to_vec());
        assert_eq!(sections(&["all".into()]), SECTIONS.to_vec());
        assert_eq!(
            sections(&["keyspace".into(), "server".into(), "nope".into()]),
            vec!["server", "keyspace"]
        );
    }

    #[test]
    fn replication_lists_the_members() {
        let facts = InfoFacts {
            node: "n1".into(),
            n: 3,
            r: 2,
            w: 2,
            members: Some(vec![MemberStatus {
                id: "n2".into(),
                addr: "127.0.0.1:7102".into(),
                client_addr: "127.0.0.1:7002".into(),
                dc: "dc1".into(),
                rack: "r1".into(),
                state: "alive".into(),
                ring_share: 0.5,
                heartbeat_age_ms: 3,
            }]),
            ..InfoFacts::default()
        };
        let text = render(&facts, &["replication"]);
        assert!(
            text.starts_with("# Replication\r\nrole:master\r\n"),
            "{text}"
        );
        assert!(text.contains("ringkv_n:3\r\n"));
        assert!(text.contains("ringkv_member0:id=n2,state=alive,addr=127.0.0.1:7102,"));
        // Every line is `field:value` or a `# Section` header.
        for l in text.lines() {
            assert!(l.starts_with('#') || l.contains(':'), "{l}");
        }
    }

    #[test]
    fn client_line_is_space_separated_pairs() {
        let line = client_line(&ClientFacts {
            id: 7,
            addr: "127.0.0.1:5000".into(),
            laddr: "127.0.0.1:6379".into(),
            name: b"app",
            resp: 3,
            lib_name: b"",
            lib_ver: b"",
            consistency: "quorum",
            age_s: 1,
        });
        assert!(line.starts_with("id=7 addr=127.0.0.1:5000 "));
        assert!(line.contains(" name=app ") && line.contains(" resp=3 "));
        assert!(line.ends_with("ringkv-consistency=quorum\n"));
    }
}
