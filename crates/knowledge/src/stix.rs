//! Small readers shared by everything that walks an ATT&CK STIX bundle, and the stable hash the
//! crate uses wherever a value must map to the same number on every platform and run.

use serde_json::Value;

/// The object's ATT&CK id (`T1059.001`, `TA0002`, `G0016`, `M1049`...), from its `mitre-attack`
/// external reference.
pub fn external_id(object: &Value) -> Option<&str> {
    object
        .get("external_references")?
        .as_array()?
        .iter()
        .find(|r| r.get("source_name").and_then(Value::as_str) == Some("mitre-attack"))?
        .get("external_id")?
        .as_str()
}

/// The tactic short names (`credential-access`) of an attack pattern's kill-chain phases.
pub fn phase_names(object: &Value) -> impl Iterator<Item = &str> {
    object
        .get("kill_chain_phases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|phase| phase.get("phase_name").and_then(Value::as_str))
}

/// FNV-1a offset basis, the usual seed.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a from `seed`: stable across platforms and runs, unlike the std hasher.
pub fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}
