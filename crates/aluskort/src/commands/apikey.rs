//! `aluskort api-key new`: a random API key and the `[[api.auth.keys]]` entry that admits it, for
//! the first caller of a new deployment (there is no default identity, issue 10).
//!
//! The key is printed once, on standard output, and kept nowhere: the entry reads it from an
//! environment variable, and the server keeps only its SHA-256.

use std::process::ExitCode;

use aluskort_config::Role;

/// 64 hex characters from the operating system's random source (two v4 UUIDs' 244 random bits).
fn random_key() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The environment variable an entry for `name` reads its key from.
pub fn env_var(name: &str) -> String {
    let upper: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("ALUSKORT_KEY_{upper}")
}

pub fn new(name: &str, role: &str, tenants: &[String]) -> anyhow::Result<ExitCode> {
    let name = name.trim();
    anyhow::ensure!(!name.is_empty(), "--name must name the caller (it is recorded as the actor of what the key does)");
    let role =
        Role::parse(role).ok_or_else(|| anyhow::anyhow!("--role {role:?}: expected analyst, senior_analyst, admin or audit_reader"))?;
    let key = random_key();
    let variable = env_var(name);
    println!("{key}");
    let tenants = if tenants.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = tenants.iter().map(|tenant| format!("{tenant:?}")).collect();
        format!("tenants = [{}]\n", quoted.join(", "))
    };
    eprintln!(
        "The line above is {name}'s API key; it is shown once and kept nowhere. Set it in the server's environment\n\
         as {variable} and add to the config:\n\n[[api.auth.keys]]\nname = {name:?}\nkey = \"${{{variable}}}\"\nrole = \"{}\"\n{tenants}\n\
         Callers send it as `Authorization: Bearer <key>` (the web UI asks for it at sign-in).",
        role.as_str()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_accepted_by_the_config() {
        let (a, b) = (random_key(), random_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.len() >= aluskort_config::auth::MIN_KEY_LENGTH && a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(env_var("sam.senior-1"), "ALUSKORT_KEY_SAM_SENIOR_1");
    }
}
