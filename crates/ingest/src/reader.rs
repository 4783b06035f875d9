//! Splits an input into alert records. Accepted shapes: JSON Lines (one object a line, blank lines
//! skipped), a JSON array of objects, a single JSON object, and a Log Analytics query response
//! (`{"tables": [{"columns": [...], "rows": [[...]]}]}`), whose rows become objects keyed by column name.

use serde_json::{Map, Value};

/// One record of the input, or why that part of the input could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    /// Where the record is: `name:line` for JSON Lines, `name[index]` for arrays.
    pub location: String,
    pub record: Result<Value, String>,
}

/// Reads every record of `bytes`, named `name` in locations. Never fails as a whole: a bad line
/// becomes one `Err` record and the rest are still read.
pub fn read_records(name: &str, bytes: &[u8]) -> Vec<InputRecord> {
    let trimmed = trim_ascii_start(bytes);
    if trimmed.is_empty() {
        return Vec::new();
    }
    // A whole-document parse first: arrays, single (possibly pretty-printed) objects, query responses.
    if let Ok(document) = serde_json::from_slice::<Value>(bytes) {
        return from_document(name, document);
    }
    if trimmed.first() == Some(&b'[') {
        let reason = match serde_json::from_slice::<Value>(bytes) {
            Err(error) => format!("invalid JSON array: {error}"),
            Ok(_) => "invalid JSON array".to_owned(),
        };
        return vec![InputRecord { location: name.to_owned(), record: Err(reason) }];
    }
    let records = jsonl_records(name, bytes);
    if records.iter().any(|r| r.record.is_err())
        && let Some(concatenated) = concatenated_records(name, bytes)
    {
        return concatenated;
    }
    records
}

fn jsonl_records(name: &str, bytes: &[u8]) -> Vec<InputRecord> {
    let mut records = Vec::new();
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = trim_ascii_start(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let location = format!("{name}:{}", index + 1);
        let record = match serde_json::from_slice::<Value>(line) {
            Ok(value @ Value::Object(_)) => Ok(unwrap_envelope(value)),
            Ok(other) => Err(format!("expected a JSON object, found {}", kind_of(&other))),
            Err(error) => Err(format!("invalid JSON: {error}")),
        };
        records.push(InputRecord { location, record });
    }
    records
}

/// JSON objects written back to back, pretty-printed (`jq '.hits.hits[]._source'` output, es_archiver
/// files): used only when line-by-line reading fails and every value parses, each located by the
/// line it starts on.
fn concatenated_records(name: &str, bytes: &[u8]) -> Option<Vec<InputRecord>> {
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    let mut records = Vec::new();
    loop {
        let rest = &bytes[stream.byte_offset()..];
        let skipped = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let start = stream.byte_offset() + skipped;
        let Some(value) = stream.next() else { break };
        let line = bytes[..start].iter().filter(|b| **b == b'\n').count() + 1;
        let record = match value.ok()? {
            value @ Value::Object(_) => Ok(unwrap_envelope(value)),
            other => Err(format!("expected a JSON object, found {}", kind_of(&other))),
        };
        records.push(InputRecord { location: format!("{name}:{line}"), record });
    }
    (records.len() > 1).then_some(records)
}

/// The records of an already-parsed document (same shapes as [`read_records`] minus JSON Lines).
pub fn from_document(name: &str, document: Value) -> Vec<InputRecord> {
    match document {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| InputRecord {
                location: format!("{name}[{index}]"),
                record: match item {
                    value @ Value::Object(_) => Ok(unwrap_envelope(value)),
                    other => Err(format!("expected a JSON object, found {}", kind_of(&other))),
                },
            })
            .collect(),
        Value::Object(map) if map.contains_key("tables") => log_analytics_rows(name, &map),
        // Elasticsearch search response: `{"hits": {"hits": [{"_id", "_source"}, ...]}}`.
        Value::Object(map) if map.get("hits").and_then(|h| h.get("hits")).is_some_and(Value::is_array) => {
            let hits = map.get("hits").and_then(|h| h.get("hits")).cloned().unwrap_or(Value::Null);
            from_document(name, hits)
        }
        // Azure Event Hubs body as Sentinel data export / diagnostic settings write it:
        // `{"records": [{...SecurityAlert row...}, ...]}`
        // (<https://learn.microsoft.com/azure/sentinel/data-export-event-hub>, "records" array of rows).
        Value::Object(map) if map.get("records").is_some_and(Value::is_array) && map.len() == 1 => {
            from_document(name, map.get("records").cloned().unwrap_or(Value::Null))
        }
        // Splunk search/export API responses: `{"results": [...]}`.
        Value::Object(map) if map.get("results").is_some_and(Value::is_array) => {
            from_document(name, map.get("results").cloned().unwrap_or(Value::Null))
        }
        value @ Value::Object(_) => vec![InputRecord { location: format!("{name}:1"), record: Ok(unwrap_envelope(value)) }],
        other => vec![InputRecord { location: name.to_owned(), record: Err(format!("expected JSON objects, found {}", kind_of(&other))) }],
    }
}

/// Log Analytics query API response: tables of columns and rows
/// (<https://learn.microsoft.com/azure/azure-monitor/logs/api/response-format>).
fn log_analytics_rows(name: &str, response: &Map<String, Value>) -> Vec<InputRecord> {
    let mut records = Vec::new();
    let tables = response.get("tables").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for (table_index, table) in tables.iter().enumerate() {
        let columns: Vec<&str> = table
            .get("columns")
            .and_then(Value::as_array)
            .map(|columns| columns.iter().map(|column| column.get("name").and_then(Value::as_str).unwrap_or_default()).collect())
            .unwrap_or_default();
        let rows = table.get("rows").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for (row_index, row) in rows.iter().enumerate() {
            let location = format!("{name}:tables[{table_index}].rows[{row_index}]");
            let record = match row.as_array() {
                Some(cells) if cells.len() == columns.len() => {
                    Ok(Value::Object(columns.iter().map(|c| (*c).to_owned()).zip(cells.iter().cloned()).collect()))
                }
                Some(cells) => Err(format!("row has {} cells but the table has {} columns", cells.len(), columns.len())),
                None => Err("row is not an array".to_owned()),
            };
            records.push(InputRecord { location, record });
        }
    }
    records
}

/// Transport envelopes around one alert: an Elasticsearch hit (`_source`, with `_id` kept as
/// `kibana.alert.uuid` when the document lacks one), a Splunk export line (`{"result": {...}}`) and a
/// Splunk HEC event (`{"time", "event": {...}}`, only the HEC keys present).
pub fn unwrap_envelope(value: Value) -> Value {
    let Value::Object(mut map) = value else { return value };
    // es_archiver / Kibana test fixtures: `{"type": "doc", "value": {"id", "index", "source": {...}}}`.
    if map.get("type").and_then(Value::as_str) == Some("doc")
        && let Some(Value::Object(mut inner)) = map.remove("value")
        && let Some(source) = inner.remove("source")
    {
        let mut hit = serde_json::Map::new();
        hit.insert("_source".to_owned(), source);
        if let Some(id) = inner.remove("id") {
            hit.insert("_id".to_owned(), id);
        }
        return unwrap_envelope(Value::Object(hit));
    }
    // A hit read with the fields API: no `_source`, `fields` of dotted keys whose values are arrays.
    if !map.contains_key("_source")
        && (map.contains_key("_id") || map.contains_key("_index"))
        && let Some(Value::Object(fields)) = map.remove("fields")
    {
        let mut source: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(key, value)| match value {
                Value::Array(mut items) if items.len() == 1 => (key, items.pop().unwrap_or(Value::Null)),
                other => (key, other),
            })
            .collect();
        if let Some(id) = map.get("_id").cloned() {
            source.entry("_id".to_owned()).or_insert(id);
        }
        let has_id = source.contains_key("kibana.alert.uuid");
        if has_id {
            source.remove("_id");
        }
        return Value::Object(source);
    }
    if let Some(Value::Object(mut source)) = map.remove("_source") {
        let has_id = source.contains_key("kibana.alert.uuid")
            || source.get("kibana").and_then(|k| k.get("alert")).and_then(|a| a.get("uuid")).is_some();
        if !has_id && let Some(id) = map.get("_id").cloned() {
            source.insert("_id".to_owned(), id);
        }
        return Value::Object(source);
    }
    if map.get("result").is_some_and(Value::is_object)
        && map.keys().all(|k| matches!(k.as_str(), "result" | "preview" | "offset" | "lastrow"))
    {
        return map.remove("result").unwrap_or(Value::Null);
    }
    // Splunk webhook alert action: `{"result": {...first result...}, "sid", "search_name", "app",
    // "owner", "results_link"}` (<https://docs.splunk.com/Documentation/Splunk/latest/Alert/Webhooks>).
    const WEBHOOK_KEYS: [&str; 8] = ["result", "sid", "search_name", "app", "owner", "results_link", "server_host", "server_uri"];
    if map.get("result").is_some_and(Value::is_object) && map.keys().all(|k| WEBHOOK_KEYS.contains(&k.as_str())) {
        let search_name = map.get("search_name").cloned();
        if let Some(Value::Object(mut result)) = map.remove("result") {
            if let Some(search_name) = search_name
                && !result.contains_key("search_name")
            {
                result.insert("search_name".to_owned(), search_name);
            }
            return Value::Object(result);
        }
    }
    // A notable as indexed (`index=notable`, `sourcetype=stash`): its fields live in `_raw` as
    // `key="value"` pairs; lift them beside the indexed ones (which win).
    let is_stash =
        map.get("sourcetype").and_then(Value::as_str) == Some("stash") || map.get("index").and_then(Value::as_str) == Some("notable");
    if is_stash && let Some(raw) = map.get("_raw").and_then(Value::as_str).map(str::to_owned) {
        for (key, values) in stash_fields(&raw) {
            if !map.contains_key(&key) {
                let value = match <[String; 1]>::try_from(values) {
                    Ok([one]) => Value::String(one),
                    Err(many) => Value::Array(many.into_iter().map(Value::String).collect()),
                };
                map.insert(key, value);
            }
        }
    }
    const HEC_KEYS: [&str; 7] = ["time", "host", "source", "sourcetype", "index", "event", "fields"];
    if map.get("event").is_some_and(Value::is_object) && map.keys().all(|k| HEC_KEYS.contains(&k.as_str())) {
        let time = map.get("time").cloned();
        if let Some(Value::Object(mut event)) = map.remove("event") {
            if let Some(time) = time
                && !event.contains_key("_time")
            {
                event.insert("_time".to_owned(), time);
            }
            return Value::Object(event);
        }
    }
    Value::Object(map)
}

/// `key="value", key=value` pairs of a Splunk stash `_raw` (the leading epoch is skipped); quoted
/// values may contain `\"` and `\\`. A key seen twice is multi-valued.
fn stash_fields(raw: &str) -> Vec<(String, Vec<String>)> {
    let mut fields: Vec<(String, Vec<String>)> = Vec::new();
    let bytes = raw.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        // A key: letters, digits, `_`, `.`, `:`, `-`, directly followed by `=`.
        let key_start = at;
        while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || matches!(bytes[at], b'_' | b'.' | b':' | b'-')) {
            at += 1;
        }
        if at == key_start || at >= bytes.len() || bytes[at] != b'=' {
            // Not a pair (the leading timestamp, stray text): skip to the next separator.
            let resume = if at > key_start { at } else { key_start + raw[key_start..].chars().next().map_or(1, char::len_utf8) };
            at = raw[resume..].find(", ").map_or(bytes.len(), |i| resume + i + 2);
            continue;
        }
        let key = raw[key_start..at].to_owned();
        at += 1;
        let mut value = String::new();
        if bytes.get(at) == Some(&b'"') {
            at += 1;
            let mut chars = raw[at..].char_indices();
            let mut end = raw.len() - at;
            while let Some((offset, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = offset + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            at += end;
        } else {
            let end = raw[at..].find(',').map_or(raw.len(), |i| at + i);
            value.push_str(raw[at..end].trim());
            at = end;
        }
        while at < bytes.len() && matches!(bytes[at], b',' | b' ') {
            at += 1;
        }
        match fields.iter_mut().find(|(existing, _)| *existing == key) {
            Some((_, values)) => values.push(value),
            None => fields.push((key, vec![value])),
        }
    }
    fields
}

/// What kind of JSON `value` is, for error messages ("a string", "an array", …).
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn trim_ascii_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    // A UTF-8 byte-order mark is not part of the data.
    bytes[start..].strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jsonl_and_names_the_bad_line() {
        let input = b"{\"a\":1}\n\nnot json\n[1]\n{\"b\":2}\n";
        let records = read_records("in.jsonl", input);
        let locations: Vec<&str> = records.iter().map(|r| r.location.as_str()).collect();
        assert_eq!(locations, vec!["in.jsonl:1", "in.jsonl:3", "in.jsonl:4", "in.jsonl:5"]);
        assert!(records[0].record.is_ok());
        assert!(records[1].record.as_ref().is_err_and(|e| e.starts_with("invalid JSON")));
        assert_eq!(records[2].record, Err("expected a JSON object, found an array".to_owned()));
        assert!(records[3].record.is_ok());
    }

    #[test]
    fn reads_arrays_single_objects_and_log_analytics_tables() {
        let records = read_records("a.json", b" [ {\"x\": 1}, 2 ] ");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].location, "a.json[1]");
        assert!(records[1].record.is_err());

        assert_eq!(read_records("o.json", b"{\n  \"x\": 1\n}\n").len(), 1);

        let response = br#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"SystemAlertId","type":"string"},{"name":"AlertSeverity","type":"string"}],"rows":[["id-1","High"],["id-2"]]}]}"#;
        let records = read_records("la.json", response);
        assert_eq!(records[0].record, Ok(serde_json::json!({"SystemAlertId": "id-1", "AlertSeverity": "High"})));
        assert!(records[1].record.is_err());
    }

    #[test]
    fn concatenated_pretty_objects_archives_and_fields_api_hits_are_read() {
        let concatenated = b"{\n  \"kibana.alert.uuid\": \"a\"\n}\n{\n  \"kibana.alert.uuid\": \"b\"\n}\n";
        let records = read_records("jq.json", concatenated);
        let locations: Vec<&str> = records.iter().map(|r| r.location.as_str()).collect();
        assert_eq!(locations, vec!["jq.json:1", "jq.json:4"]);
        assert!(records.iter().all(|r| r.record.is_ok()));

        let archive = br#"{"type":"doc","value":{"id":"x1","index":".alerts-security.alerts-default","source":{"@timestamp":"2024-01-01T00:00:00Z"}}}"#;
        let records = read_records("archive.json", archive);
        assert_eq!(records[0].record, Ok(serde_json::json!({"@timestamp": "2024-01-01T00:00:00Z", "_id": "x1"})));

        let fields = br#"{"_index":"i","_id":"h1","fields":{"kibana.alert.rule.name":["Rule"],"host.ip":["10.0.0.1","10.0.0.2"]}}"#;
        let records = read_records("fields.json", fields);
        assert_eq!(
            records[0].record,
            Ok(serde_json::json!({"kibana.alert.rule.name": "Rule", "host.ip": ["10.0.0.1", "10.0.0.2"], "_id": "h1"}))
        );
    }

    #[test]
    fn stash_notables_lift_their_raw_fields() {
        let raw = r#"1700000000, search_name="Endpoint - Malware - Rule", src="89.160.20.112", user="a \"quoted\" name", dest=ws-1, mitre="T1059", mitre="T1105""#;
        let notable = serde_json::json!({"index": "notable", "sourcetype": "stash", "source": "Endpoint - Malware - Rule", "_raw": raw});
        let lifted = unwrap_envelope(notable);
        assert_eq!(lifted["search_name"], "Endpoint - Malware - Rule");
        assert_eq!(lifted["src"], "89.160.20.112");
        assert_eq!(lifted["user"], "a \"quoted\" name");
        assert_eq!(lifted["dest"], "ws-1");
        assert_eq!(lifted["mitre"], serde_json::json!(["T1059", "T1105"]));
        assert_eq!(stash_fields("garbage without pairs"), Vec::new());
    }

    #[test]
    fn event_hub_envelopes_and_splunk_webhooks_are_unwrapped() {
        let body = br#"{"records":[{"Type":"SecurityAlert","SystemAlertId":"a"},{"Type":"SecurityAlert","SystemAlertId":"b"}]}"#;
        let records = read_records("eventhub", body);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].location, "eventhub[1]");
        assert_eq!(records[1].record.as_ref().ok().and_then(|r| r.get("SystemAlertId")), Some(&serde_json::json!("b")));

        let webhook = br#"{"sid":"scheduler__admin_search_RMD5","search_name":"Brute Force","app":"SplunkEnterpriseSecuritySuite","owner":"admin","results_link":"https://splunk/x","result":{"event_id":"E1","urgency":"high"}}"#;
        let records = read_records("splunk-webhook", webhook);
        assert_eq!(records[0].record, Ok(serde_json::json!({"event_id": "E1", "urgency": "high", "search_name": "Brute Force"})));
    }

    #[test]
    fn empty_input_has_no_records_and_invalid_utf8_is_an_error_not_a_panic() {
        assert!(read_records("e", b"  \n ").is_empty());
        let records = read_records("u", b"{\"a\":\"\xff\"}\n");
        assert!(records[0].record.is_err());
    }
}
