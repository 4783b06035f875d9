//! `{{ variable }}` substitution in step descriptions and parameters.
//!
//! Hand-written on purpose: the only feature is replacing a known name by a string. No loops, no
//! filters, no escaping: a rendered value only ever becomes a JSON string value (or the approver's
//! description), never text spliced into JSON, HTML or a shell, so it needs none. A name the
//! renderer does not know is an error, at lint time and at render time, never an empty string.

use serde_json::{Map, Number, Value};

use super::model::EntityKind;

/// Variables every step can use, with what they hold.
pub const INVESTIGATION_VARIABLES: &[(&str, &str)] = &[
    ("investigation_id", "the investigation's id"),
    ("incident_id", "the incident the alert was grouped into, or empty"),
    ("tenant_id", "the tenant"),
    ("alert_id", "the SIEM's alert id"),
    ("alert.title", "the alert's title"),
    ("alert.severity", "the alert's severity as the SIEM set it"),
    ("alert.product", "the product that raised the alert"),
    ("alert.source", "sentinel, elastic, splunk, ..."),
    ("severity", "the investigation's severity (the alert's until reasoning sets one)"),
    ("classification", "the verdict (true_positive, needs_investigation)"),
    ("confidence", "the verdict's confidence, two decimals"),
    ("techniques", "technique ids of the alert and the investigation, comma-separated"),
    ("tactics", "tactics of the alert and the investigation, comma-separated"),
    ("playbook.id", "this playbook's id"),
    ("playbook.name", "this playbook's name"),
    ("playbook.version", "this playbook's version"),
    ("step.id", "this step's id"),
];

/// Variables of steps with `for_each`, whatever the kind.
pub const TARGET_VARIABLES: &[(&str, &str)] =
    &[("target", "the entity the step applies to"), ("target.kind", "its kind (host, account, ...)")];

/// Further target variables, set only for one kind of entity (empty when the entity lacks them).
pub const fn kind_variables(kind: EntityKind) -> &'static [&'static str] {
    match kind {
        EntityKind::Host => &["target.machine_id", "target.hostname"],
        EntityKind::Account => &["target.upn", "target.aad_user_id"],
        EntityKind::Filehash => &["target.algorithm"],
        EntityKind::MailMessage => &["target.recipient", "target.sender", "target.internet_message_id", "target.subject"],
        EntityKind::OauthApp => &["target.name", "target.object_id"],
        EntityKind::Ip | EntityKind::Url | EntityKind::Domain | EntityKind::Mailbox => &[],
    }
}

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` at byte {0} is never closed by `}}}}`")]
    Unterminated(usize),
    #[error("`{{{{ {0} }}}}` is not a variable name (lowercase letters, digits, `_` and `.`)")]
    BadName(String),
    #[error("unknown template variable `{{{{ {0} }}}}`")]
    Unknown(String),
    #[error("template variable `{{{{ {name} }}}}` {reason}")]
    Unavailable { name: String, reason: String },
}

enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

fn pieces(text: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let after_open = &rest[open + 2..];
        let close = after_open.find("}}").ok_or(TemplateError::Unterminated(offset + open))?;
        let name = after_open[..close].trim();
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
            && !name.starts_with('.')
            && !name.ends_with('.');
        if !valid {
            return Err(TemplateError::BadName(name.to_owned()));
        }
        out.push(Piece::Variable(name));
        let consumed = open + 2 + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// The variable names `text` uses, in order of appearance.
pub fn variables(text: &str) -> Result<Vec<&str>, TemplateError> {
    Ok(pieces(text)?
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Variable(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Whether a step applied to `for_each` entities (or investigation-wide, `None`) can use `name`.
pub fn check_variable(name: &str, for_each: Option<EntityKind>) -> Result<(), TemplateError> {
    if INVESTIGATION_VARIABLES.iter().any(|(known, _)| *known == name) {
        return Ok(());
    }
    let unavailable = |reason: String| Err(TemplateError::Unavailable { name: name.to_owned(), reason });
    let is_target_variable = TARGET_VARIABLES.iter().any(|(known, _)| *known == name);
    let owner = EntityKind::ALL.into_iter().find(|kind| kind_variables(*kind).contains(&name));
    match (for_each, owner) {
        (_, None) if !is_target_variable => Err(TemplateError::Unknown(name.to_owned())),
        (None, _) => unavailable("is empty in a step without `for_each`".to_owned()),
        (Some(kind), Some(owner)) if !kind_variables(kind).contains(&name) => {
            unavailable(format!("is only set for `for_each = \"{owner}\"`"))
        }
        (Some(_), _) => Ok(()),
    }
}

/// Values of the variables one step sees: its own, then those of the scope it was made in
/// ([`Vars::child`]). A playbook's variables are a child of the investigation's and a step's of
/// the playbook's, so planning a step on a target sets a few names instead of copying them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars<'p> {
    values: Vec<(&'static str, String)>,
    parent: Option<&'p Vars<'p>>,
}

impl<'p> Vars<'p> {
    /// A scope that sees every variable of `self` unless it sets the name itself.
    pub fn child(&'p self) -> Vars<'p> {
        Vars { values: Vec::new(), parent: Some(self) }
    }

    pub fn set(&mut self, name: &'static str, value: impl Into<String>) {
        let value = value.into();
        match self.values.iter_mut().find(|(known, _)| *known == name) {
            Some((_, held)) => *held = value,
            None => self.values.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        match self.values.iter().find(|(known, _)| *known == name) {
            Some((_, value)) => Some(value),
            None => self.parent?.get(name),
        }
    }
}

/// `text` with every `{{ name }}` replaced by its value.
pub fn render(text: &str, vars: &Vars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text)? {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Variable(name) => out.push_str(vars.get(name).ok_or_else(|| TemplateError::Unknown(name.to_owned()))?),
        }
    }
    Ok(out)
}

/// Every string leaf of a parameter table, with its path (`params.comment`, `params.tags[1]`).
pub fn string_leaves(params: &toml::Table) -> Vec<(String, &str)> {
    fn visit<'a>(path: String, value: &'a toml::Value, out: &mut Vec<(String, &'a str)>) {
        match value {
            toml::Value::String(text) => out.push((path, text)),
            toml::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    visit(format!("{path}[{index}]"), item, out);
                }
            }
            toml::Value::Table(table) => {
                for (key, item) in table {
                    visit(format!("{path}.{key}"), item, out);
                }
            }
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) | toml::Value::Datetime(_) => {}
        }
    }
    let mut out = Vec::new();
    for (key, value) in params {
        visit(format!("params.{key}"), value, &mut out);
    }
    out
}

/// The parameter table as JSON with every string leaf rendered. TOML dates become strings.
pub fn render_params(params: &toml::Table, vars: &Vars) -> Result<Map<String, Value>, TemplateError> {
    fn convert(value: &toml::Value, vars: &Vars) -> Result<Value, TemplateError> {
        Ok(match value {
            toml::Value::String(text) => Value::String(render(text, vars)?),
            toml::Value::Integer(number) => Value::from(*number),
            toml::Value::Float(number) => Number::from_f64(*number).map_or_else(|| Value::String(number.to_string()), Value::Number),
            toml::Value::Boolean(flag) => Value::Bool(*flag),
            toml::Value::Datetime(datetime) => Value::String(datetime.to_string()),
            toml::Value::Array(items) => Value::Array(items.iter().map(|item| convert(item, vars)).collect::<Result<_, _>>()?),
            toml::Value::Table(table) => Value::Object(
                table.iter().map(|(key, item)| Ok((key.clone(), convert(item, vars)?))).collect::<Result<_, TemplateError>>()?,
            ),
        })
    }
    params.iter().map(|(key, value)| Ok((key.clone(), convert(value, vars)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        let mut vars = Vars::default();
        vars.set("alert.title", "Suspicious {{ braces }} & \"quotes\"");
        vars.set("target", "ws01.corp.local");
        vars
    }

    #[test]
    fn substitutes_known_variables_with_or_without_spaces() {
        let text = "Isolate {{target}} for {{ alert.title }}.";
        assert_eq!(render(text, &vars()).expect("renders"), "Isolate ws01.corp.local for Suspicious {{ braces }} & \"quotes\".");
        assert_eq!(render("no variables }} here", &vars()).expect("renders"), "no variables }} here");
        assert_eq!(variables("{{ a }}{{b.c}} x").expect("parses"), vec!["a", "b.c"]);
    }

    #[test]
    fn unknown_unterminated_and_malformed_variables_are_errors() {
        assert_eq!(render("{{ nope }}", &vars()), Err(TemplateError::Unknown("nope".to_owned())));
        assert_eq!(render("abc {{ target", &vars()), Err(TemplateError::Unterminated(4)));
        assert_eq!(variables("{{ Target }}"), Err(TemplateError::BadName("Target".to_owned())));
        assert_eq!(variables("{{  }}"), Err(TemplateError::BadName(String::new())));
        assert_eq!(variables("{{ .x }}"), Err(TemplateError::BadName(".x".to_owned())));
    }

    #[test]
    fn target_variables_need_for_each_and_the_right_kind() {
        assert_eq!(check_variable("alert.title", None), Ok(()));
        assert_eq!(check_variable("target", Some(EntityKind::Ip)), Ok(()));
        assert_eq!(check_variable("target.machine_id", Some(EntityKind::Host)), Ok(()));
        let error = check_variable("target", None).expect_err("no target");
        assert_eq!(error.to_string(), "template variable `{{ target }}` is empty in a step without `for_each`");
        let error = check_variable("target.machine_id", Some(EntityKind::Account)).expect_err("wrong kind");
        assert_eq!(error.to_string(), "template variable `{{ target.machine_id }}` is only set for `for_each = \"host\"`");
        assert_eq!(check_variable("target.colour", Some(EntityKind::Host)), Err(TemplateError::Unknown("target.colour".to_owned())));
        assert_eq!(check_variable("alert.body", None), Err(TemplateError::Unknown("alert.body".to_owned())));
    }

    #[test]
    fn renders_nested_parameters_and_keeps_non_strings() {
        let params: toml::Table = toml::from_str(
            r#"
comment = "ALUSKORT: {{ alert.title }}"
count = 3
ratio = 0.5
when = 2024-07-22T10:00:00Z
tags = ["a", "{{ target }}"]
[nested]
host = "{{ target }}"
"#,
        )
        .expect("toml");
        let rendered = render_params(&params, &vars()).expect("renders");
        let json = Value::Object(rendered);
        assert_eq!(json["comment"], "ALUSKORT: Suspicious {{ braces }} & \"quotes\"");
        assert_eq!(json["count"], 3);
        assert_eq!(json["ratio"], 0.5);
        assert_eq!(json["when"], "2024-07-22T10:00:00Z");
        assert_eq!(json["tags"][1], "ws01.corp.local");
        assert_eq!(json["nested"]["host"], "ws01.corp.local");
        let leaves: Vec<String> = string_leaves(&params).into_iter().map(|(path, _)| path).collect();
        assert_eq!(leaves, vec!["params.comment", "params.nested.host", "params.tags[0]", "params.tags[1]"]);
        let broken: toml::Table = toml::from_str("x = \"{{ nope }}\"").expect("toml");
        assert_eq!(render_params(&broken, &vars()), Err(TemplateError::Unknown("nope".to_owned())));
    }
}
