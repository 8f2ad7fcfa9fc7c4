//! A replication factor per data center (`--dc-replication dc1:3,dc2:2`)
//! and the data center names it takes.

/// Most data centers `--dc-replication` may name.
pub const DC_REPLICATION_DCS_MAX: usize = 16;

/// Replicas per data center (`--dc-replication dc1:3,dc2:2`); empty: one
/// replication factor N over the whole ring (the default). Sorted by DC
/// name, so every node that parses the same setting holds the same value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DcReplication(Vec<(String, usize)>);

impl DcReplication {
    /// Parses `dc1:3,dc2:2`: DC names (see [`is_dc_name`]), each once,
    /// each count in `1..=replicas_max`, the sum too.
    pub fn parse(text: &str, replicas_max: usize) -> Result<Self, String> {
        let mut dcs: Vec<(String, usize)> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, count) = part
                .split_once(':')
                .ok_or_else(|| format!("`{part}` is not DC:COUNT (e.g. dc1:3)"))?;
            let name = name.trim();
            if !is_dc_name(name) {
                return Err(format!(
                    "`{name}` is not a DC name (1..={DC_NAME_BYTES_MAX} printable ASCII bytes, \
                     no space, `,` or `:`)"
                ));
            }
            let count: usize = count
                .trim()
                .parse()
                .map_err(|_| format!("the count of {name} must be an integer, got `{count}`"))?;
            if !(1..=replicas_max).contains(&count) {
                return Err(format!(
                    "the count of {name} must be in 1..={replicas_max}, got {count}"
                ));
            }
            if dcs.iter().any(|(n, _)| n == name) {
                return Err(format!("{name} is named twice"));
            }
            dcs.push((name.to_owned(), count));
        }
        if dcs.is_empty() {
            return Err("names no data center (expected e.g. dc1:3,dc2:2)".into());
        }
        if dcs.len() > DC_REPLICATION_DCS_MAX {
            return Err(format!(
                "names {} data centers, at most {DC_REPLICATION_DCS_MAX}",
                dcs.len()
            ));
        }
        let total: usize = dcs.iter().map(|(_, c)| c).sum();
        if total > replicas_max {
            return Err(format!(
                "adds up to {total} replicas per key, at most {replicas_max}"
            ));
        }
        dcs.sort();
        Ok(Self(dcs))
    }

    /// No per-DC factor: N over the whole ring.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replicas per key over every DC (N).
    pub fn total(&self) -> usize {
        self.0.iter().map(|(_, c)| c).sum()
    }

    /// Replicas per key in `dc` (0: not named).
    pub fn in_dc(&self, dc: &str) -> usize {
        self.0.iter().find(|(n, _)| n == dc).map_or(0, |(_, c)| *c)
    }

    /// The DCs and their counts, sorted by name.
    pub fn dcs(&self) -> &[(String, usize)] {
        &self.0
    }
}

impl std::fmt::Display for DcReplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (dc, count)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{dc}:{count}")?;
        }
        Ok(())
    }
}

/// Longest data center name `--dc-replication` takes, in bytes (as `--dc`).
pub const DC_NAME_BYTES_MAX: usize = 64;

/// Whether `--dc-replication` may name a data center `name`: what `--dc`
/// takes (printable ASCII without spaces), less its separators `,` and `:`.
pub fn is_dc_name(name: &str) -> bool {
    (1..=DC_NAME_BYTES_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b':')
}
